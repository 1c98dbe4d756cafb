// Settings › Provider keys: list, add, edit, discover models, test and delete the person's
// provider configs (connections). The key is write-only: the API only ever returns its last
// four characters, and so does this page.

import { api, friendlyError } from "../../api.js";
import { confirmDialog } from "../../dialog.js";
import { field, h, replaceChildren } from "../../dom.js";
import { providerEditor } from "./provider-editor.js";

/** What a connection offers, in a few words. */
function modelsSummary(config) {
  const chosen = (config.enabled_models || []).length;
  const discovered = config.discovered_models;
  if (chosen) return `${chosen} model(s) offered`;
  if (discovered && discovered.length) return `all ${discovered.length} discovered model(s)`;
  return config.base_url ? "no models yet: discover them" : "the provider's default models";
}

/** A test's outcome, naming the model it tried. */
function testMessage(outcome) {
  if (!outcome.ok) {
    const tried = outcome.model ? ` (tried ${outcome.model})` : "";
    return `Failed${tried}: ${outcome.error && (outcome.error.message || outcome.error)}`;
  }
  const missing = (outcome.not_listed || []).length ? ` Not listed by the server: ${outcome.not_listed.join(", ")}.` : "";
  return `Works with ${outcome.model}.${missing}`;
}

export function providersSection() {
  const list = h("ul", { class: "item-list", attrs: { "aria-label": "Saved provider keys" } });
  const typeSelect = h("select", { name: "provider", required: true });
  const name = h("input", { type: "text", name: "name", maxLength: 100, placeholder: "e.g. Work account" });
  const key = h("input", { type: "password", name: "api_key", autocomplete: "off", spellcheck: false });
  const baseUrl = h("input", { type: "url", name: "base_url", maxLength: 500, placeholder: "https://… (optional)" });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const notice = h("p", { class: "hint", attrs: { role: "status" } });
  const form = h("form", { class: "stack", attrs: { "aria-label": "Add a provider key" } },
    field("Provider", typeSelect), field("Name", name), field("API key", key, "Stored encrypted; you will only see its last four characters."),
    field("Base URL", baseUrl, "For Ollama, vLLM or LM Studio: the server's URL ending in /v1. Its models are discovered when you add it."),
    error, notice, h("button", { type: "submit", class: "primary", text: "Add key" }));
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
    const edit = h("button", { type: "button", class: "small", text: "Edit", attrs: { "aria-label": `Edit ${label}` } });
    const test = h("button", { type: "button", class: "small", text: "Test", attrs: { "aria-label": `Test ${label}` } });
    const remove = h("button", { type: "button", class: "small danger", text: "Delete", attrs: { "aria-label": `Delete ${label}` } });
    const editorSlot = h("div", { class: "editor-slot" });
    edit.addEventListener("click", () => {
      if (editorSlot.firstChild) { replaceChildren(editorSlot); return; }
      replaceChildren(editorSlot, providerEditor(config, async (changed) => {
        replaceChildren(editorSlot);
        if (changed) await load();
      }));
    });
    test.addEventListener("click", async () => {
      result.textContent = "Testing…";
      try {
        result.textContent = testMessage(await api("POST", `/providers/${config.id}/test`));
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
        h("span", { class: "muted", text: config.has_key ? `key ••••${config.key_last4 || ""}` : "no key" }),
        config.base_url ? h("span", { class: "muted", text: ` · ${config.base_url}` }) : null,
        h("span", { class: "muted", text: ` · ${modelsSummary(config)}` }),
        config.enabled === false ? h("span", { class: "muted", text: " · disabled" }) : null),
      h("span", { class: "item-actions" }, edit, test, remove), result, editorSlot);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = notice.textContent = "";
    const body = { provider: typeSelect.value };
    if (name.value.trim()) body.name = name.value.trim();
    if (key.value) body.api_key = key.value;
    if (baseUrl.value.trim()) body.base_url = baseUrl.value.trim();
    try {
      const created = await api("POST", "/providers", body);
      form.reset();
      await load();
      const outcome = created.discovery;
      if (outcome) notice.textContent = outcome.ok ? `Saved. The server lists ${outcome.count} model(s); use Edit to choose which to offer.`
        : `Saved, but its models could not be listed: ${outcome.error}`;
    } catch (err) {
      error.textContent = friendlyError(err);
    } finally {
      key.value = ""; // never keep the secret in the page longer than the request
    }
  });

  load();
  return section;
}
