// The conversation list: newest first, with rename (inline) and delete (after a confirmation)
// on each entry. The search box filters titles at once, then shows the server's matches
// (titles and message text) when they arrive. On narrow screens it is a drawer.

import { h, replaceChildren } from "../dom.js";
import { icon } from "../icons.js";

/** `handlers`: onRename(conversation, title), onDelete(conversation), onOpen(), onSearch(query). */
export class Sidebar {
  constructor(handlers) {
    this.handlers = handlers;
    this.conversations = [];
    this.currentId = null;
    this.results = null; // {query, ids} from the server's search
    this.search = h("input", { type: "search", id: "conversation-search", placeholder: "Search chats", attrs: { "aria-label": "Search conversations" } });
    this.search.addEventListener("input", () => {
      this.render();
      const query = this.search.value.trim();
      if (query) this.handlers.onSearch(query);
    });
    this.list = h("ul", { class: "conversation-list", attrs: { "aria-label": "Conversations" } });
    this.newButton = h("a", { href: "/", class: "button primary new-chat", text: "+ New chat", dataset: { route: "" } });
    this.el = h("nav", { id: "sidebar", class: "sidebar", attrs: { "aria-label": "Conversations" } },
      this.newButton, this.search, this.list);
    this.el.addEventListener("click", (event) => { if (event.target.closest("a[data-route]")) this.handlers.onOpen(); });
  }

  setConversations(conversations) {
    this.conversations = [...conversations].sort((a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0));
    this.render();
  }

  /** Add or update one conversation (e.g. a new chat, a new title, new activity). */
  upsert(conversation) {
    const others = this.conversations.filter((c) => c.id !== conversation.id);
    const known = this.conversations.find((c) => c.id === conversation.id) || {};
    this.setConversations([{ ...known, ...conversation }, ...others]);
  }

  remove(conversationId) {
    this.setConversations(this.conversations.filter((c) => c.id !== conversationId));
  }

  get(conversationId) {
    return this.conversations.find((c) => c.id === conversationId) || null;
  }

  setCurrent(conversationId) {
    this.currentId = conversationId;
    this.render();
  }

  /** The server's matches for `query` (ignored if the box has changed since). */
  setResults(query, conversations) {
    this.results = { query, ids: new Set(conversations.map((c) => c.id)) };
    this.setConversations([...this.conversations, ...conversations.filter((c) => !this.get(c.id))]);
  }

  render() {
    const raw = this.search.value.trim();
    const query = raw.toLowerCase();
    const fromServer = this.results && this.results.query === raw ? this.results.ids : null;
    const shown = this.conversations.filter((c) => !query || (fromServer ? fromServer.has(c.id) : (c.title || "").toLowerCase().includes(query)));
    if (!shown.length) {
      replaceChildren(this.list, h("li", { class: "muted", text: query ? "No matching chats." : "No chats yet." }));
      return;
    }
    replaceChildren(this.list, shown.map((c) => this.item(c)));
  }

  item(conversation) {
    const title = conversation.title || "New chat";
    const link = h("a", { href: `/c/${conversation.id}`, class: "conversation-link", text: title, dataset: { route: "" } });
    if (conversation.id === this.currentId) link.setAttribute("aria-current", "page");
    const rename = h("button", { type: "button", class: "icon small", attrs: { "aria-label": `Rename “${title}”` } }, icon("pencil"));
    const remove = h("button", { type: "button", class: "icon small", attrs: { "aria-label": `Delete “${title}”` } }, icon("trash"));
    const li = h("li", { class: "conversation", dataset: { conversationId: conversation.id } }, link,
      h("span", { class: "conversation-actions" }, rename, remove));
    rename.addEventListener("click", () => this.startRename(li, conversation));
    remove.addEventListener("click", () => this.handlers.onDelete(conversation));
    return li;
  }

  startRename(li, conversation) {
    const input = h("input", { type: "text", value: conversation.title || "", maxLength: 200, attrs: { "aria-label": "New title" } });
    const form = h("form", { class: "rename-form" }, input,
      h("button", { type: "submit", class: "small", text: "Save" }));
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title && title !== conversation.title) this.handlers.onRename(conversation, title);
      else this.render();
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); finish(true); });
    input.addEventListener("keydown", (event) => { if (event.key === "Escape") finish(false); });
    replaceChildren(li, form);
    input.focus();
    input.select();
  }
}
