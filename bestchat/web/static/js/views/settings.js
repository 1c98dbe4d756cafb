// The settings page: appearance, a link to the plan page, provider keys, API tokens, tool
// approvals, data export and account deletion.

import { h } from "../dom.js";
import { appearanceSection, dataSection } from "./settings/account.js";
import { providersSection } from "./settings/providers.js";
import { tokensSection } from "./settings/tokens.js";
import { toolApprovalsSection } from "./settings/tools.js";

/** A pointer to the plan page (plans, limits, billing). */
function planSection() {
  return h("section", { class: "card", attrs: { "aria-labelledby": "plan-title" } },
    h("h2", { id: "plan-title", text: "Plan" }),
    h("p", {}, "Your plan, its limits and the other plans: ",
      h("a", { href: "/plan", dataset: { route: "" }, text: "see your plan" }), "."));
}

export function settingsView(container, user, onAccountDeleted) {
  document.title = "Settings – BestChat";
  container.replaceChildren(h("div", { class: "page" },
    h("h1", { text: "Settings" }),
    h("p", { class: "muted", text: `Signed in as ${user.email}` }),
    appearanceSection(), planSection(), providersSection(), tokensSection(), toolApprovalsSection(),
    dataSection(onAccountDeleted)));
}
