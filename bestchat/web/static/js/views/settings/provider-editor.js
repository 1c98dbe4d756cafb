// Settings › Provider keys › Edit: change a saved connection (name, base URL, key replaced or
// removed, enabled) and choose the models it offers from what its server lists ("Discover
// models"), with display names. The key field always starts empty: empty keeps the stored key.

import { api, friendlyError } from "../../api.js";
import { field, h, replaceChildren } from "../../dom.js";

/** The offered-models checklist: one row per model (offer it? display name), plus free entry. */
function modelChecklist(config) {
  const rows = h("div", { class: "model-checklist", attrs: { role: "group", "aria-label": "Models to offer" } });
  const extra = h("input", { type: "text", name: "extra_models", placeholder: "other model ids, comma-separated" });
  const state = new Map(); // id -> { offer: checkbox, name: input }

  function render(discovered, chosen, names) {
    const ids = [...new Set([...(discovered || []), ...chosen])];
    const listed = new Set(discovered || []);
    replaceChildren(rows, ids.length ? ids.map((id) => {
      const previous = state.get(id);
      const offer = h("input", { type: "checkbox", checked: previous ? previous.offer.checked : chosen.includes(id),
        attrs: { "aria-label": `Offer ${id}` } });
      const name = h("input", { type: "text", maxLength: 100, placeholder: "display name",
        value: previous ? previous.name.value : (names[id] || ""), attrs: { "aria-label": `Display name of ${id}` } });
      state.set(id, { offer, name });
      const note = discovered && !listed.has(id) ? h("span", { class: "muted", text: " (not listed by the server)" }) : null;
      return h("label", { class: "model-row" }, offer, h("span", {}, h("code", { text: id }), note), name);
    }) : h("p", { class: "muted", text: "No models yet: discover them, or type their ids below." }));
  }

  render(config.discovered_models, config.enabled_models || [], config.model_names || {});
  return {
    element: h("div", {}, rows, field("Other models", extra, "For a server that cannot list its models.")),
    refresh: (discovered) => render(discovered, [], {}),
    values() {
      const typed = extra.value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
      const chosen = [...state].filter(([, row]) => row.offer.checked && row.offer.isConnected).map(([id]) => id);
      const names = {};
      for (const [id, row] of state) if (row.name.isConnected && row.name.value.trim()) names[id] = row.name.value.trim();
      return { enabled_models: [...new Set([...chosen, ...typed])], model_names: names };
    },
  };
}

/** The editor of one saved connection; `onDone(changed)` closes it. */
export function providerEditor(config, onDone) {
  const name = h("input", { type: "text", name: "name", maxLength: 100, value: config.name || "" });
  const baseUrl = h("input", { type: "url", name: "base_url", maxLength: 500, value: config.base_url || "", placeholder: "http://localhost:11434/v1" });
  const key = h("input", { type: "password", name: "api_key", autocomplete: "off", spellcheck: false,
    placeholder: config.has_key ? "leave empty to keep the stored key" : "optional" });
  const removeKey = h("input", { type: "checkbox", name: "remove_key" });
  const enabled = h("input", { type: "checkbox", name: "enabled", checked: config.enabled !== false });
  const models = modelChecklist(config);
  const status = h("p", { class: "test-result", attrs: { role: "status" } });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const discover = h("button", { type: "button", class: "small", text: "Discover models" });
  const cancel = h("button", { type: "button", class: "small", text: "Cancel", on: { click: () => onDone(false) } });
  const form = h("form", { class: "stack provider-editor", attrs: { "aria-label": `Edit ${config.name || config.provider}` } },
    field("Name", name), field("Base URL", baseUrl),
    field("API key", key, config.has_key ? `Stored: ••••${config.key_last4 || ""}. Type a new one to replace it.` : "Stored encrypted."),
    config.has_key ? h("label", { class: "check" }, removeKey, " Remove the stored key") : null,
    h("label", { class: "check" }, enabled, " Enabled"),
    h("h4", { text: "Models offered" }),
    h("p", { class: "hint", text: "None checked: every model the server lists is offered." }),
    models.element, h("div", { class: "item-actions" }, discover), status, error,
    h("div", { class: "item-actions" }, h("button", { type: "submit", class: "primary small", text: "Save" }), cancel));

  discover.addEventListener("click", async () => {
    status.textContent = "Asking the server for its models…";
    try {
      const updated = await api("POST", `/providers/${config.id}/discover`);
      const outcome = updated.discovery || {};
      status.textContent = outcome.ok ? `The server lists ${outcome.count} model(s).` : `Discovery failed: ${outcome.error}`;
      if (outcome.ok) models.refresh(updated.discovered_models);
    } catch (err) {
      status.textContent = friendlyError(err);
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { name: name.value.trim() || null, base_url: baseUrl.value.trim() || null, enabled: enabled.checked, ...models.values() };
    if (removeKey.checked) body.api_key = null;
    else if (key.value) body.api_key = key.value;
    try {
      await api("PUT", `/providers/${config.id}`, body);
      onDone(true);
    } catch (err) {
      error.textContent = friendlyError(err);
    } finally {
      key.value = ""; // never keep the secret in the page longer than the request
    }
  });
  return form;
}
