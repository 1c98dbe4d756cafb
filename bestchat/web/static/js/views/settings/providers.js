// Settings › Provider keys: list, add, test and delete the person's provider configs. The key
// is write-only: the API only ever returns its last four characters, and so does this page.

import { api, friendlyError } from "../../api.js";
import { confirmDialog } from "../../dialog.js";
import { field, h, replaceChildren } from "../../dom.js";

export function providersSection() {
  const list = h("ul", { class: "item-list", attrs: { "aria-label": "Saved provider keys" } });
  const typeSelect = h("select", { name: "provider", required: true });
  const name = h("input", { type: "text", name: "name", maxLength: 100, placeholder: "e.g. Work account" });
  const key = h("input", { type: "password", name: "api_key", autocomplete: "off", spellcheck: false });
  const baseUrl = h("input", { type: "url", name: "base_url", maxLength: 500, placeholder: "https://… (optional)" });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const form = h("form", { class: "stack", attrs: { "aria-label": "Add a provider key" } },
    field("Provider", typeSelect), field("Name", name), field("API key", key, "Stored encrypted; you will only see its last four characters."),
    field("Base URL", baseUrl), error, h("button", { type: "submit", class: "primary", text: "Add key" }));
  const section = h("section", { class: "card", attrs: { "aria-labelledby": "providers-title" } },
    h("h2", { id: "providers-title", text: "Provider keys" }), list,
    h("h3", { text: "Add a key" }), form);

  async function load() {
    try {
      const data = await api("GET", "/providers");
      replaceChildren(typeSelect, (data.provider_types || []).map((t) => h("option", { value: t.name, text: t.label || t.name })));
      const own = (data.providers || []).filter((p) => p.editable !== false);
      replaceChildren(list, own.length ? own.map(item) : h("li", { class: "muted", text: "No keys saved yet." }));
    } catch (err) {
      replaceChildren(list, h("li", { class: "form-error", text: friendlyError(err) }));
    }
  }

  function item(config) {
    const result = h("span", { class: "test-result", attrs: { role: "status" } });
    const label = config.name ? `${config.name} (${config.provider})` : config.provider;
    const test = h("button", { type: "button", class: "small", text: "Test", attrs: { "aria-label": `Test ${label}` } });
    const remove = h("button", { type: "button", class: "small danger", text: "Delete", attrs: { "aria-label": `Delete ${label}` } });
    test.addEventListener("click", async () => {
      result.textContent = "Testing…";
      try {
        const outcome = await api("POST", `/providers/${config.id}/test`);
        result.textContent = outcome.ok ? `Works${outcome.model ? ` (${outcome.model})` : ""}.` : `Failed: ${outcome.error && (outcome.error.message || outcome.error)}`;
      } catch (err) {
        result.textContent = friendlyError(err);
      }
    });
    remove.addEventListener("click", async () => {
      if (!await confirmDialog({ title: "Delete this key?", message: label, confirmLabel: "Delete", danger: true })) return;
      try { await api("DELETE", `/providers/${config.id}`); await load(); } catch (err) { result.textContent = friendlyError(err); }
    });
    return h("li", { class: "item" },
      h("span", { class: "item-main" }, h("strong", { text: label }), " ",
        h("span", { class: "muted", text: config.has_key ? `key ••••${config.key_last4 || ""}` : "no key" })),
      h("span", { class: "item-actions" }, test, remove), result);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { provider: typeSelect.value };
    if (name.value.trim()) body.name = name.value.trim();
    if (key.value) body.api_key = key.value;
    if (baseUrl.value.trim()) body.base_url = baseUrl.value.trim();
    try {
      await api("POST", "/providers", body);
      form.reset();
      await load();
    } catch (err) {
      error.textContent = friendlyError(err);
    } finally {
      key.value = ""; // never keep the secret in the page longer than the request
    }
  });

  load();
  return section;
}
