// The message list of the open conversation: renders the shown branch, and on each chunk
// re-renders only the streaming message (at most every 30 ms; a timer, not an
// animation frame, so a tab in the background keeps up too). Keeps the view
// pinned to the bottom while the person has not scrolled up. After the last message a context
// summary covers, a marker says that the model got a summary of the earlier messages instead
// of the messages themselves; it opens to show that summary.

import { h, replaceChildren } from "../dom.js";
import { count } from "../format.js";
import { messageView, updateMessageView } from "./message-view.js";

export class Thread {
  constructor(actions) {
    this.actions = actions;
    this.store = null;
    this.views = new Map();
    this.marker = null; // the summary marker shown, if any
    this.openSummary = null; // the id of the summary the person opened (kept across re-renders)
    this.dirty = new Set();
    this.frame = null;
    this.list = h("div", { class: "messages", attrs: { role: "log", "aria-label": "Messages", "aria-live": "off" } });
    this.el = h("section", { class: "thread", tabIndex: -1 }, this.list);
  }

  show(store) {
    this.store = store;
    this.render();
  }

  /** Rebuild the shown branch (after new messages, a branch switch or a reload). */
  render() {
    const stick = this.atBottom();
    this.views.clear();
    this.dirty.clear();
    if (!this.store) { replaceChildren(this.list); return; }
    const path = this.store.activePath();
    if (!path.length) {
      replaceChildren(this.list, h("div", { class: "empty" },
        h("h2", { text: "How can I help?" }),
        h("p", { text: "Pick a model and write a message below." })));
      return;
    }
    replaceChildren(this.list, path.map((message) => {
      const view = messageView(message, this.store, this.actions);
      this.views.set(message.id, view);
      return view;
    }));
    this.marker = null;
    this.placeSummary();
    if (stick) this.scrollToBottom();
  }

  /** Show the marker of the newest summary of the shown branch after its last message. */
  placeSummary() {
    const summary = this.store && this.store.shownSummary();
    const after = summary && this.views.get(summary.last_message_id);
    if (!after) {
      if (this.marker) this.marker.remove();
      this.marker = null;
      return;
    }
    if (this.marker) this.marker.remove();
    this.marker = summaryMarker(summary, this.openSummary === summary.id);
    this.marker.addEventListener("toggle", (event) => {
      this.openSummary = event.target.open ? summary.id : null;
    });
    after.after(this.marker);
  }

  /** A message's content or status changed; refresh it on the next frame. */
  update(messageId) {
    if (!this.views.has(messageId)) return;
    this.dirty.add(messageId);
    if (this.frame === null) this.frame = setTimeout(() => this.flush(), 30);
  }

  flush() {
    this.frame = null;
    const stick = this.atBottom();
    for (const id of this.dirty) {
      const view = this.views.get(id);
      const message = this.store && this.store.messages.get(id);
      if (view && message) updateMessageView(view, message, this.store, this.actions);
    }
    this.dirty.clear();
    if (stick) this.scrollToBottom();
  }

  atBottom() {
    const el = this.el;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  scrollToBottom() {
    this.el.scrollTop = this.el.scrollHeight;
  }
}

/** "Earlier messages summarized for the model · 12 messages, 48,210 → 812 tokens", opening to the summary. */
export function summaryMarker(summary, open = false) {
  const facts = [];
  const covered = Array.isArray(summary.covered) ? summary.covered.length : summary.covered;
  if (typeof covered === "number") facts.push(`${count(covered)} ${covered === 1 ? "message" : "messages"}`);
  if (summary.input_tokens != null && summary.output_tokens != null) {
    facts.push(`${count(summary.input_tokens)} → ${count(summary.output_tokens)} tokens`);
  }
  const title = `Earlier messages summarized for the model${facts.length ? ` · ${facts.join(", ")}` : ""}`;
  return h("details", { class: "context-summary", open, dataset: { summaryId: summary.id } },
    h("summary", { text: title }),
    h("p", { class: "plain context-summary-text", text: summary.summary || "" }));
}
