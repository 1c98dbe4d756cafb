// The chat page: sidebar, message thread and composer, wired to the REST API and to the live
// socket. It is created once per sign-in and kept while the person visits other pages, so
// streams keep flowing in the background and come back intact.

import { api, friendlyError, isLimitError } from "../api.js";
import { confirmDialog } from "../dialog.js";
import { h } from "../dom.js";
import { icon } from "../icons.js";
import { navigate, setPath } from "../router.js";
import { toast } from "../toast.js";
import { Composer } from "../chat/composer.js";
import { ContextMenu } from "../chat/context-menu.js";
import { Sidebar } from "../chat/sidebar.js";
import { ConversationStore } from "../chat/store.js";
import { broadcast, onBroadcast } from "../chat/tabsync.js";
import { Thread } from "../chat/thread.js";
import { ToolsMenu } from "../chat/tools-menu.js";
import { dropZone } from "../chat/uploads.js";
import { errorText } from "../chat/message-view.js";

const TYPING_SEND_EVERY_MS = 3000;
const TYPING_SHOW_MS = 4000;
const GAP_WAIT_MS = 700; // chunks may arrive out of order briefly; past this, ask for a replay
const MAX_PAGES = 50; // of 200 messages each
const SEARCH_DEBOUNCE_MS = 250;
const AFTER_ANSWER_PAGE = 50; // messages re-read when an answer ends (its meta, new summaries)
const SUMMARY_RETRY_MS = 1500; // an answer names a summary not listed yet: ask once more

export class ChatPage {
  constructor(socket) {
    this.socket = socket;
    this.store = null;
    this.lastTypingSent = 0;
    this.gapTimers = new Map();
    this.sidebar = new Sidebar({
      onRename: (c, title) => this.rename(c, title),
      onDelete: (c) => this.remove(c),
      onOpen: () => this.toggleSidebar(false),
      onSearch: (query) => this.search(query),
    });
    this.thread = new Thread({
      onEdit: (m, text) => this.edit(m, text),
      onRegenerate: (m) => this.regenerate(m),
      onChoose: (m) => { this.store.choose(m); this.thread.render(); },
      onDecide: (e, decision, remember) => this.decide(e, decision, remember),
    });
    this.composer = new Composer({
      onSend: (draft) => this.send(draft),
      onStop: () => this.stop(),
      onTyping: () => this.typing(),
    });
    this.toolsMenu = new ToolsMenu({ onChange: (disabled) => this.setDisabledTools(disabled) });
    this.contextMenu = new ContextMenu({ onChange: (strategy) => this.setContextStrategy(strategy) });
    this.title = h("h1", { class: "chat-title", text: "New chat" });
    this.typingNote = h("p", { class: "typing-note", attrs: { "aria-live": "polite" } });
    // A refusal by one of the user's limits stays in view (a toast would vanish before it is
    // read) until dismissed or the next message is accepted.
    this.limitNote = h("div", { class: "limit-note", attrs: { role: "alert" }, hidden: true });
    this.sidebarToggle = h("button", {
      type: "button", class: "sidebar-toggle",
      attrs: { "aria-controls": "sidebar", "aria-expanded": "false" },
      on: { click: () => this.toggleSidebar() },
    }, icon("menu"), " Chats");
    const main = h("div", { class: "chat-main" },
      h("div", { class: "chat-head" }, this.sidebarToggle, this.title,
        h("div", { class: "chat-controls" }, this.contextMenu.el, this.toolsMenu.el)),
      this.thread.el, this.typingNote, this.limitNote, this.composer.form);
    dropZone(main, (files) => this.composer.addFiles(files));
    this.el = h("div", { class: "chat-page" }, this.sidebar.el, main);
    this.listen();
    this.loadConversations();
    this.loadModels();
  }

  // ---- page lifecycle ----

  /** Show the page in `container` with conversation `id` (null: a new chat). */
  async mount(container, id) {
    container.replaceChildren(this.el);
    await this.open(id);
  }

  async open(id) {
    this.sidebar.setCurrent(id);
    if (this.store && this.store.conversationId === id && id) return;
    this.store = new ConversationStore(id);
    this.modelPickedFor = null;
    if (!id) { this.toolsMenu.setDisabled([]); this.contextMenu.setCurrent(null); }
    this.typingNote.textContent = "";
    this.setTitle();
    this.thread.show(this.store);
    this.refreshBusy();
    if (!id) { this.composer.focus(); return; }
    await this.reloadMessages();
    this.resubscribe();
  }

  /** Load every message of the open conversation (all pages) and show its active branch. */
  async reloadMessages() {
    const store = this.store;
    try {
      let before = null;
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const query = `limit=200${before ? `&before=${before}` : ""}`;
        const data = await api("GET", `/conversations/${store.conversationId}/messages?${query}`);
        if (store !== this.store) return;
        for (const message of data.messages || []) store.upsert(message);
        store.addSummaries(data.context_summaries);
        if (page === 0 && data.leaf_id) store.chooseBranchTo(data.leaf_id);
        if (!data.has_more || !data.messages.length) break;
        before = data.messages[0].id;
      }
      this.thread.render();
      this.refreshBusy();
    } catch (error) {
      if (error.status === 404) {
        toast("That chat does not exist (or was deleted).", { kind: "error" });
        navigate("/", { replace: true });
      } else {
        toast(friendlyError(error), { kind: "error" });
      }
    }
  }

  /** Subscribe frames for (re)connects: the open conversation, resuming each running stream. */
  subscriptions() {
    return this.store && this.store.conversationId ? this.store.subscribeFrames() : [];
  }

  resubscribe() {
    for (const frame of this.subscriptions()) this.socket.send(frame);
  }

  async loadConversations() {
    try {
      const data = await api("GET", "/conversations?limit=200");
      this.sidebar.setConversations(data.conversations || []);
      this.setTitle();
    } catch (error) {
      toast(friendlyError(error), { kind: "error" });
    }
  }

  async loadModels() {
    try {
      const data = await api("GET", "/models");
      const current = this.store && this.sidebar.get(this.store.conversationId);
      this.composer.setModels(data.models || [], data.default, current && current.model);
    } catch (error) {
      this.composer.setModels([], null, null);
      toast(`Could not load models: ${friendlyError(error)}`, { kind: "error" });
    }
  }

  /** Ask the server which conversations match (titles and message text), debounced. */
  search(query) {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(async () => {
      try {
        const data = await api("GET", `/conversations?q=${encodeURIComponent(query)}&limit=200`);
        this.sidebar.setResults(query, data.conversations || []);
      } catch (error) {
        toast(friendlyError(error), { kind: "error" });
      }
    }, SEARCH_DEBOUNCE_MS);
  }

  setTitle() {
    const conversation = this.store && this.sidebar.get(this.store.conversationId);
    this.title.textContent = conversation ? conversation.title || "New chat" : "New chat";
    document.title = `${this.title.textContent} – BestChat`;
    // Pick the conversation's model once when it opens; later updates keep the person's choice.
    if (conversation && this.modelPickedFor !== conversation.id) {
      this.composer.selectModel(conversation.model);
      this.toolsMenu.setDisabled(conversation.disabled_tools);
      this.contextMenu.setCurrent(conversation.context_strategy);
      this.modelPickedFor = conversation.id;
    }
  }

  toggleSidebar(open = !this.el.classList.contains("sidebar-open")) {
    this.el.classList.toggle("sidebar-open", open);
    this.sidebarToggle.setAttribute("aria-expanded", String(open));
    if (open) this.sidebar.search.focus();
  }

  refreshBusy() {
    this.composer.setBusy(Boolean(this.store && this.store.busyMessages().length));
  }

  // ---- actions ----

  async send({ content, model, attachments }) {
    this.composer.setBusy(true);
    try {
      if (!this.store.conversationId) {
        const disabled = this.toolsMenu.disabled;
        const conversation = await api("POST", "/conversations", {
          model, disabled_tools: disabled.length ? disabled : undefined,
          context_strategy: this.contextMenu.value ?? undefined,
        });
        this.sidebar.upsert(conversation);
        broadcast({ type: "conversation.updated", conversation });
        this.store = new ConversationStore(conversation.id);
        this.sidebar.setCurrent(conversation.id);
        this.thread.show(this.store);
        setPath(`/c/${conversation.id}`);
        this.setTitle();
        this.resubscribe();
      }
      const store = this.store;
      const parent = store.lastShown(); // continue the branch on screen, not just the newest one
      const body = { content, model, attachments, parent_id: parent ? parent.id : undefined };
      this.showExchange(store, await api("POST", `/conversations/${store.conversationId}/messages`, body));
      this.composer.clear();
      this.showLimit(null);
    } catch (error) {
      this.showError(error);
    } finally {
      this.refreshBusy();
    }
  }

  /** A failed send, edit or regenerate: a limit's refusal above the composer, else a toast. */
  showError(error) {
    if (isLimitError(error)) this.showLimit(friendlyError(error));
    else toast(friendlyError(error), { kind: "error" });
  }

  /** Show `text` (a limit's message: which limit, and when it resets) with a link to the plan
   * page; null hides it. */
  showLimit(text) {
    this.limitNote.hidden = !text;
    if (!text) { this.limitNote.replaceChildren(); return; }
    this.limitNote.replaceChildren(
      h("p", { class: "limit-note-text", text }),
      h("p", { class: "limit-note-actions" },
        h("a", { href: "/plan", dataset: { route: "" }, text: "See your plan and limits" }),
        h("a", { href: "/usage", dataset: { route: "" }, text: "Usage" }),
        h("button", { type: "button", class: "link-button", text: "Dismiss", on: { click: () => this.showLimit(null) } })));
  }

  /** Show a new {user_message, assistant_message} pair as the current branch. */
  showExchange(store, data) {
    for (const message of [data.user_message, data.assistant_message]) {
      if (!message) continue;
      store.upsert(message);
      store.choose(message);
    }
    this.afterNewAnswer(store, data.assistant_message);
  }

  /** A new answer started: show it, and make sure its stream is followed from seq 0. */
  afterNewAnswer(store, assistant) {
    if (store !== this.store) return;
    this.thread.render();
    this.refreshBusy();
    if (assistant) {
      const known = store.messages.get(assistant.id);
      this.socket.send({ type: "subscribe", conversation_id: store.conversationId, message_id: assistant.id, after_seq: known.last_seq });
    }
    const conversation = this.sidebar.get(store.conversationId);
    if (conversation) this.sidebar.upsert({ ...conversation, updated_at: new Date().toISOString() });
  }

  /** Stop every running answer; the final status also arrives as a live event. */
  async stop() {
    const store = this.store;
    const busy = store ? store.busyMessages() : [];
    await Promise.all(busy.map(async (m) => {
      try {
        const data = await api("POST", `/messages/${m.id}/cancel`);
        store.upsert(data.message);
        if (store === this.store) this.thread.update(m.id);
      } catch (error) {
        toast(friendlyError(error), { kind: "error" });
      }
    }));
    this.refreshBusy();
  }

  /** A new answer beside `message` (also Retry of a failed one), with the picked model. */
  async regenerate(message) {
    const store = this.store;
    try {
      const model = this.composer.modelSelect.value;
      const data = await api("POST", `/messages/${message.id}/regenerate`, model ? { model } : {});
      const assistant = data.assistant_message;
      store.upsert(assistant);
      store.choose(store.messages.get(assistant.id));
      this.afterNewAnswer(store, assistant);
      this.showLimit(null);
    } catch (error) {
      this.showError(error);
    }
  }

  /** Editing a sent message starts a new branch beside it; the old one stays reachable. */
  async edit(message, content) {
    const store = this.store;
    try {
      const data = await api("PATCH", `/messages/${message.id}`, { content, model: this.composer.modelSelect.value || undefined });
      this.showExchange(store, data);
      this.showLimit(null);
    } catch (error) {
      this.showError(error);
    }
  }

  /** Approve or deny a tool call; the answer carries the call's new state at once. */
  async decide(execution, decision, remember) {
    const store = this.store;
    try {
      const data = await api("POST", `/tool-executions/${execution.id}/${decision}`, { remember: Boolean(remember) });
      if (store === this.store) this.onExecution(data.execution);
    } catch (error) {
      toast(friendlyError(error), { kind: "error" });
      if (store === this.store) this.thread.update(execution.message_id);
    }
  }

  /** The Tools menu's switches: the open chat's `disabled_tools` (kept for a new chat). */
  async setDisabledTools(disabled) {
    const id = this.store && this.store.conversationId;
    if (!id) return;
    const updated = await api("PATCH", `/conversations/${id}`, { disabled_tools: disabled });
    this.sidebar.upsert(updated);
    broadcast({ type: "conversation.updated", conversation: updated });
  }

  /** The Context control: the open chat's `context_strategy` (kept for a new chat). */
  async setContextStrategy(strategy) {
    const id = this.store && this.store.conversationId;
    if (!id) return;
    const updated = await api("PATCH", `/conversations/${id}`, { context_strategy: strategy });
    this.sidebar.upsert(updated);
    broadcast({ type: "conversation.updated", conversation: updated });
  }

  async rename(conversation, title) {
    try {
      const updated = await api("PATCH", `/conversations/${conversation.id}`, { title });
      this.sidebar.upsert(updated);
      broadcast({ type: "conversation.updated", conversation: updated });
      this.setTitle();
    } catch (error) {
      toast(friendlyError(error), { kind: "error" });
      this.sidebar.render();
    }
  }

  async remove(conversation) {
    const ok = await confirmDialog({
      title: "Delete this chat?", message: `“${conversation.title || "New chat"}” and all its messages will be deleted.`,
      confirmLabel: "Delete", danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `/conversations/${conversation.id}`);
      broadcast({ type: "conversation.deleted", conversation_id: conversation.id });
      this.forget(conversation.id);
      toast("Chat deleted.");
    } catch (error) {
      toast(friendlyError(error), { kind: "error" });
    }
  }

  forget(conversationId) {
    this.sidebar.remove(conversationId);
    if (this.store && this.store.conversationId === conversationId && location.pathname.startsWith("/c/")) navigate("/");
  }

  typing() {
    const now = Date.now();
    if (!this.store || !this.store.conversationId || now - this.lastTypingSent < TYPING_SEND_EVERY_MS) return;
    this.lastTypingSent = now;
    this.socket.send({ type: "typing", conversation_id: this.store.conversationId });
  }

  // ---- live events ----

  listen() {
    const s = this.socket;
    s.on("message.created", (e) => this.onCreated(e));
    s.on("chunk", (e) => this.onChunk(e));
    s.on("message.completed", (e) => this.onFinished(e));
    s.on("message.failed", (e) => this.onFinished(e));
    s.on("tool.call", (e) => this.onExecution(e.execution));
    s.on("tool.approval_required", (e) => this.onExecution(e.execution));
    s.on("tool.result", (e) => this.onExecution(e.execution));
    s.on("typing", (e) => this.onTyping(e));
    s.on("conversation.updated", (e) => this.onConversation(e.conversation));
    s.on("conversation.deleted", (e) => this.forget(e.conversation_id));
    s.on("error", (e) => {
      if (String(e.code || "").startsWith("limit_")) this.showLimit(e.message);
      else toast(e.message || "The live connection reported an error.", { kind: "error" });
    });
    this.unlisten = [];
    this.unlisten.push(onBroadcast((m) => {
      if (m.type === "conversation.updated") this.onConversation(m.conversation);
      if (m.type === "conversation.deleted") {
        if (this.store && this.store.conversationId === m.conversation_id) toast("This chat was deleted in another tab.");
        this.forget(m.conversation_id);
      }
    }));
    const refresh = () => this.loadConversations();
    window.addEventListener("focus", refresh);
    this.unlisten.push(() => window.removeEventListener("focus", refresh));
  }

  /** Signed out: stop reacting to other tabs and window focus (the socket is stopped apart). */
  dispose() {
    for (const stop of this.unlisten) stop();
  }

  isCurrent(conversationId) {
    return Boolean(this.store && conversationId && this.store.conversationId === conversationId);
  }

  onCreated({ message, conversation_id: conversationId }) {
    const id = conversationId || message.conversation_id;
    const conversation = this.sidebar.get(id);
    if (conversation) this.sidebar.upsert({ ...conversation, updated_at: message.created_at || new Date().toISOString() });
    else this.loadConversations();
    if (!this.isCurrent(id)) return;
    if (this.store.upsert(message)) this.store.choose(this.store.messages.get(message.id));
    this.thread.render();
    this.refreshBusy();
  }

  onChunk({ message_id: messageId, seq, delta, conversation_id: conversationId }) {
    if (!this.store) return;
    const result = this.store.applyChunk(messageId, seq, delta);
    if (result === "applied" || result === "gap") this.thread.update(messageId);
    if (result === "gap") this.watchGap(messageId);
    if (result === "unknown" && this.isCurrent(conversationId)) this.reloadMessages().then(() => this.resubscribe());
    if (result === "applied") this.refreshBusy();
  }

  /** Chunks arrived past a hole: if the hole is still there shortly, replay from it. */
  watchGap(messageId) {
    if (this.gapTimers.has(messageId)) return;
    this.gapTimers.set(messageId, setTimeout(() => {
      this.gapTimers.delete(messageId);
      const message = this.store && this.store.messages.get(messageId);
      if (message && this.store.hasGap(messageId)) {
        this.socket.send({ type: "subscribe", conversation_id: this.store.conversationId, message_id: messageId, after_seq: message.last_seq });
      }
    }, GAP_WAIT_MS));
  }

  onFinished(event) {
    const id = event.conversation_id || (event.message && event.message.conversation_id);
    if (!this.isCurrent(id) || !this.store.messages.has(event.message_id)) return;
    if (event.message) this.store.upsert(event.message);
    const status = event.status || (event.type === "message.failed" ? "failed" : "complete");
    const extra = event.error ? { error: errorText(event.error) } : {};
    const known = this.store.messages.get(event.message_id);
    const context = event.context || (event.meta && event.meta.context);
    if (context) extra.meta = { ...(known.meta || {}), context };
    this.store.setStatus(event.message_id, status, extra);
    this.store.early.delete(event.message_id);
    this.thread.update(event.message_id);
    this.refreshBusy();
    if (status === "complete") this.afterAnswer(this.store, event.message_id);
  }

  /**
   * An answer ended: re-read the newest messages for what the server stored with it (how its
   * context was fitted) and the conversation's summaries, so a summary made for it is shown.
   */
  async afterAnswer(store, answerId, retry = true) {
    let data;
    try {
      data = await api("GET", `/conversations/${store.conversationId}/messages?limit=${AFTER_ANSWER_PAGE}`);
    } catch {
      return; // the page keeps what it shows; the next reload catches up
    }
    if (store !== this.store) return;
    for (const message of data.messages || []) {
      const known = store.messages.get(message.id);
      const changed = !known || known.status !== message.status || JSON.stringify(known.meta || {}) !== JSON.stringify(message.meta || {});
      store.upsert(message);
      if (changed) this.thread.update(message.id);
    }
    if (store.addSummaries(data.context_summaries)) this.thread.placeSummary();
    const answer = store.messages.get(answerId);
    const summaryId = answer && answer.meta && answer.meta.context && answer.meta.context.summary_id;
    if (retry && summaryId && !store.summaries.has(summaryId)) {
      setTimeout(() => this.afterAnswer(store, answerId, false), SUMMARY_RETRY_MS);
    }
  }

  onExecution(execution) {
    if (!execution || !this.store || !this.store.messages.has(execution.message_id)) return;
    this.store.trackExecution(execution);
    this.store.noteWaiting(execution.message_id);
    this.thread.update(execution.message_id);
    this.refreshBusy();
  }

  onTyping({ conversation_id: conversationId, user }) {
    if (!this.isCurrent(conversationId)) return;
    const who = user && (user.display_name || user.email);
    this.typingNote.textContent = `${who || "Someone"} is typing…`;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { this.typingNote.textContent = ""; }, TYPING_SHOW_MS);
  }

  onConversation(conversation) {
    if (!conversation) return;
    this.sidebar.upsert(conversation);
    if (!this.isCurrent(conversation.id)) return;
    this.setTitle();
    if (conversation.disabled_tools) this.toolsMenu.setDisabled(conversation.disabled_tools);
    if ("context_strategy" in conversation) this.contextMenu.setCurrent(conversation.context_strategy);
  }
}
