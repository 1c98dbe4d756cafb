// The chat header's "Tools" menu: every tool this server offers (GET /api/v1/tools) with a
// switch that turns it on or off for the open conversation. The switches edit the
// conversation's `disabled_tools`; a new chat keeps the choice until it is created.

import { api, friendlyError } from "../api.js";
import { h, replaceChildren, uid } from "../dom.js";

const APPROVAL_NOTES = { always: "runs without asking", ask: "asks you first", never: "never runs" };

/** `handlers`: onChange(disabledTools) -> Promise (rejects to undo the switch). */
export class ToolsMenu {
  constructor(handlers) {
    this.handlers = handlers;
    this.tools = null; // null until loaded
    this.disabled = [];
    this.panelId = uid("tools");
    this.button = h("button", {
      type: "button", class: "small tools-button", text: "Tools",
      attrs: { "aria-haspopup": "true", "aria-expanded": "false", "aria-controls": this.panelId },
      on: { click: () => this.toggle() },
    });
    this.list = h("ul", { class: "tools-list", attrs: { "aria-label": "Tools for this chat" } });
    this.status = h("p", { class: "form-error", attrs: { role: "alert" } });
    this.panel = h("div", { id: this.panelId, class: "tools-panel", hidden: true, attrs: { role: "group", "aria-label": "Tools for this chat" } },
      h("p", { class: "tools-panel-title", text: "Tools the model may use in this chat" }), this.list, this.status);
    this.el = h("div", { class: "tools-menu" }, this.button, this.panel);
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { this.toggle(false); this.button.focus(); }
    });
    document.addEventListener("click", (event) => {
      if (!this.panel.hidden && !this.el.contains(event.target)) this.toggle(false);
    });
  }

  /** Show the switches of a conversation (its `disabled_tools`). */
  setDisabled(disabled) {
    const next = [...(disabled || [])].sort();
    if (next.join("\n") === this.disabled.join("\n")) return; // (keeps the focused switch)
    this.disabled = next;
    this.render();
  }

  async toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (!open) return;
    this.status.textContent = "";
    await this.load();
    const first = this.list.querySelector("input");
    if (first) first.focus();
  }

  async load() {
    try {
      const data = await api("GET", "/tools");
      this.tools = data.tools || [];
      this.render();
    } catch (error) {
      this.status.textContent = friendlyError(error);
    }
  }

  render() {
    if (this.tools === null) return;
    if (!this.tools.length) {
      replaceChildren(this.list, h("li", { class: "muted", text: "No tools are installed on this server." }));
      return;
    }
    replaceChildren(this.list, this.tools.map((tool) => this.item(tool)));
  }

  item(tool) {
    const id = uid("tool");
    const on = !this.disabled.includes(tool.name);
    const input = h("input", {
      type: "checkbox", id, checked: on, class: "switch",
      attrs: { role: "switch", "aria-describedby": `${id}-about` },
    });
    input.addEventListener("change", () => this.change(tool.name, input));
    const notes = [`risk: ${tool.risk}`, APPROVAL_NOTES[tool.approval] || tool.approval];
    if (tool.network) notes.push("uses the network");
    if (!tool.runnable) notes.push("cannot run here: no sandbox");
    return h("li", { class: "tools-item" },
      input,
      h("label", { htmlFor: id, class: "tools-item-name", text: tool.name }),
      h("small", { id: `${id}-about`, class: "hint" },
        tool.description ? `${tool.description} ` : "", `(${notes.join(", ")})`));
  }

  /** Switch `name` on or off; changes are sent one after the other, in the order made. */
  change(name, input) {
    const before = this.disabled;
    const next = input.checked ? before.filter((n) => n !== name) : [...before, name].sort();
    this.disabled = next;
    this.status.textContent = "";
    this.pending = (this.pending || Promise.resolve()).then(async () => {
      try {
        await this.handlers.onChange(next);
      } catch (error) {
        this.disabled = before;
        this.render();
        this.status.textContent = friendlyError(error);
      }
    });
    return this.pending;
  }
}
