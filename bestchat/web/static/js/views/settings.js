// The settings page: appearance, provider keys, API tokens, tool approvals, data export and
// account deletion.

import { h } from "../dom.js";
import { appearanceSection, dataSection } from "./settings/account.js";
import { providersSection } from "./settings/providers.js";
import { tokensSection } from "./settings/tokens.js";
import { toolApprovalsSection } from "./settings/tools.js";

export function settingsView(container, user, onAccountDeleted) {
  document.title = "Settings – BestChat";
  container.replaceChildren(h("div", { class: "page" },
    h("h1", { text: "Settings" }),
    h("p", { class: "muted", text: `Signed in as ${user.email}` }),
    appearanceSection(), providersSection(), tokensSection(), toolApprovalsSection(),
    dataSection(onAccountDeleted)));
}
