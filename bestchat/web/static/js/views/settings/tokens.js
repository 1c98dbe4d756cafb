// Settings › API tokens: create one (its secret is shown once, with a copy button), list and
// revoke them.

import { api, friendlyError } from "../../api.js";
import { confirmDialog } from "../../dialog.js";
import { copyButton, field, h, replaceChildren } from "../../dom.js";

export function tokensSection() {
  const list = h("ul", { class: "item-list", attrs: { "aria-label": "API tokens" } });
  const name = h("input", { type: "text", name: "name", required: true, maxLength: 100, placeholder: "e.g. laptop script" });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const created = h("div", { class: "created-token", attrs: { "aria-live": "polite" } });
  const form = h("form", { class: "inline-form", attrs: { "aria-label": "Create an API token" } },
    field("Token name", name), h("button", { type: "submit", class: "primary", text: "Create token" }));
  const section = h("section", { class: "card", attrs: { "aria-labelledby": "tokens-title" } },
    h("h2", { id: "tokens-title", text: "API tokens" }),
    h("p", { class: "muted", text: "Use a token as “Authorization: Bearer …” with the REST API or the OpenAI-compatible endpoint." }),
    form, error, created, list);

  async function load() {
    try {
      const data = await api("GET", "/tokens");
      const active = (data.tokens || []).filter((t) => !t.revoked_at);
      replaceChildren(list, active.length ? active.map(item) : h("li", { class: "muted", text: "No tokens yet." }));
    } catch (err) {
      replaceChildren(list, h("li", { class: "form-error", text: friendlyError(err) }));
    }
  }

  function item(token) {
    const revoke = h("button", { type: "button", class: "small danger", text: "Revoke", attrs: { "aria-label": `Revoke ${token.name}` } });
    revoke.addEventListener("click", async () => {
      if (!await confirmDialog({ title: "Revoke this token?", message: `“${token.name}” stops working at once.`, confirmLabel: "Revoke", danger: true })) return;
      try { await api("DELETE", `/tokens/${token.id}`); await load(); } catch (err) { error.textContent = friendlyError(err); }
    });
    const used = token.last_used_at ? `last used ${new Date(token.last_used_at).toLocaleString()}` : "never used";
    return h("li", { class: "item" },
      h("span", { class: "item-main" }, h("strong", { text: token.name }), " ",
        h("code", { text: `${token.prefix}…` }), " ", h("span", { class: "muted", text: used })),
      h("span", { class: "item-actions" }, revoke));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const token = await api("POST", "/tokens", { name: name.value.trim() });
      form.reset();
      const secret = h("code", { class: "secret", text: token.token });
      replaceChildren(created, h("div", { class: "notice" },
        h("p", { text: "Copy your new token now: it will not be shown again." }),
        h("p", { class: "secret-row" }, secret, copyButton(() => token.token, "Copy token")),
        h("button", { type: "button", class: "small", text: "Done", on: { click: () => replaceChildren(created) } })));
      await load();
    } catch (err) {
      error.textContent = friendlyError(err);
    }
  });

  load();
  return section;
}
