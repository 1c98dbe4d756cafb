// Settings › Appearance and Your data: theme choice, data export, and account deletion (typed
// confirmation plus password).

import { api, friendlyError } from "../../api.js";
import { field, h } from "../../dom.js";
import { currentTheme, setTheme, THEMES } from "../../theme.js";

const THEME_LABELS = { system: "Follow the system", light: "Light", dark: "Dark" };
const CONFIRM_PHRASE = "delete my account";

export function appearanceSection() {
  const group = h("fieldset", { class: "radio-group" }, h("legend", { text: "Theme" }),
    THEMES.map((theme) => h("label", { class: "radio" },
      h("input", { type: "radio", name: "theme", value: theme, checked: theme === currentTheme(),
        on: { change: () => setTheme(theme) } }),
      THEME_LABELS[theme])));
  return h("section", { class: "card", attrs: { "aria-labelledby": "appearance-title" } },
    h("h2", { id: "appearance-title", text: "Appearance" }), group);
}

/** `onDeleted()` runs after the account is gone. */
export function dataSection(onDeleted) {
  const phrase = h("input", { type: "text", name: "confirm", autocomplete: "off", spellcheck: false });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password" });
  const submit = h("button", { type: "submit", class: "danger", text: "Delete my account", disabled: true });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const form = h("form", { class: "stack danger-zone", attrs: { "aria-labelledby": "delete-title" } },
    h("h3", { id: "delete-title", text: "Delete my account" }),
    h("p", { text: "This deletes your account, chats, files, keys and tokens for good." }),
    field(`Type “${CONFIRM_PHRASE}” to confirm`, phrase), field("Password", password), error, submit);
  phrase.addEventListener("input", () => { submit.disabled = phrase.value.trim().toLowerCase() !== CONFIRM_PHRASE; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    error.textContent = "";
    try {
      await api("DELETE", "/me", { password: password.value });
      onDeleted();
    } catch (err) {
      error.textContent = friendlyError(err);
    }
  });
  return h("section", { class: "card", attrs: { "aria-labelledby": "data-title" } },
    h("h2", { id: "data-title", text: "Your data" }),
    h("p", {}, h("a", { href: "/api/v1/me/export", class: "button", download: "bestchat-export.json", text: "Export my data (JSON)" })),
    form);
}
