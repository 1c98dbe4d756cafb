// The chat header's "Context" control: how a conversation too long for the model's window is
// fitted into it. Lists the strategies this server offers (GET /api/v1/context-strategies) and
// "Server default (…)"; a choice sets the open conversation's `context_strategy` (a name, or
// null for the default). A new chat keeps the choice until it is created. Hidden when the
// server offers no strategies.

import { api, friendlyError } from "../api.js";
import { h, uid } from "../dom.js";

const DEFAULT = ""; // the <option> value of "Server default"

/** `handlers`: onChange(strategy: string | null) -> Promise (rejects to undo the choice). */
export class ContextMenu {
  constructor(handlers) {
    this.handlers = handlers;
    this.strategies = null; // null until loaded
    this.defaults = [];
    this.current = null; // the conversation's context_strategy: a list of names or null
    this.status = h("span", { class: "form-error", id: uid("context-error"), attrs: { role: "alert" } });
    this.select = h("select", { id: uid("context"), class: "context-select", attrs: { "aria-describedby": this.status.id } });
    this.select.addEventListener("change", () => this.change());
    this.el = h("div", { class: "context-menu", hidden: true },
      h("label", { htmlFor: this.select.id, text: "Context" }), this.select, this.status);
    this.load();
  }

  async load() {
    try {
      const data = await api("GET", "/context-strategies");
      this.strategies = data.strategies || [];
      this.defaults = data.default || [];
    } catch {
      this.strategies = []; // no strategies (or no such endpoint): nothing to choose
    }
    this.render();
  }

  /** The value a choice sends: one name, or null for the server default. */
  get value() {
    return this.select.value === DEFAULT ? null : this.select.value;
  }

  /** Show a conversation's `context_strategy` (null: the server default). */
  setCurrent(strategy) {
    this.current = strategy == null ? null : [].concat(strategy);
    this.render();
  }

  render() {
    if (this.strategies === null) return;
    this.el.hidden = !this.strategies.length;
    const defaults = this.defaults.length ? ` (${this.defaults.join(", ")})` : "";
    const options = [h("option", { value: DEFAULT, text: `Server default${defaults}` })];
    for (const strategy of this.strategies) {
      options.push(h("option", { value: strategy.name, text: strategy.name, title: strategy.description || "" }));
    }
    const wanted = this.current && this.current.length ? this.current.join(", ") : DEFAULT;
    // A chain set through the API (several names) is shown as it is.
    if (wanted !== DEFAULT && !this.strategies.some((s) => s.name === wanted)) {
      options.push(h("option", { value: wanted, text: wanted, disabled: true }));
    }
    this.select.replaceChildren(...options);
    this.select.value = wanted;
  }

  async change() {
    const before = this.current;
    const value = this.value;
    this.current = value === null ? null : [value];
    this.status.textContent = "";
    try {
      await this.handlers.onChange(value);
    } catch (error) {
      this.current = before;
      this.render();
      this.status.textContent = friendlyError(error);
    }
  }
}
