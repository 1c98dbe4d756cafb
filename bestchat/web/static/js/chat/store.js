// The open conversation's messages as a tree (edits and regenerations are siblings under the
// same parent), which branch is shown, and each streaming message's text assembled from
// chunks strictly in seq order: duplicates are dropped, early chunks wait for the missing ones.

// "waiting": the answer is paused until the person decides on a tool call.
export const BUSY = new Set(["pending", "queued", "streaming", "waiting"]);
const FINAL = new Set(["complete", "cancelled", "failed", "interrupted"]);
const ROOT = "root";
// A tool call's statuses in the order they happen: an older copy never replaces a newer one.
const EXECUTION_STEP = {
  pending_approval: 0, approved: 1, running: 2, denied: 3, succeeded: 3, failed: 3, timed_out: 3,
};

export class ConversationStore {
  constructor(conversationId) {
    this.conversationId = conversationId;
    this.messages = new Map();
    this.selected = new Map(); // parent key -> chosen child id
    this.early = new Map(); // message id -> Map(seq -> delta) received ahead of a gap
    this.executions = new Map(); // tool execution id -> execution
    this.summaries = new Map(); // context summary id -> summary (what the model got instead of older turns)
  }

  /** Add the conversation's context summaries; true when one is new or changed. */
  addSummaries(summaries) {
    let changed = false;
    for (const summary of summaries || []) {
      const known = this.summaries.get(summary.id);
      if (known && known.last_message_id === summary.last_message_id && known.summary === summary.summary) continue;
      this.summaries.set(summary.id, summary);
      changed = true;
    }
    return changed;
  }

  /** The newest summary that ends at a message of the shown branch (null: none). */
  shownSummary() {
    const shown = new Set(this.activePath().map((m) => m.id));
    let best = null;
    for (const summary of this.summaries.values()) {
      if (!shown.has(summary.last_message_id)) continue;
      if (!best || (summary.created_at || "") >= (best.created_at || "")) best = summary;
    }
    return best;
  }

  /** Add or refresh a message from the server without losing text streamed in meanwhile. */
  upsert(message) {
    const { tool_executions: executions, ...incoming } = message;
    for (const execution of executions || []) this.trackExecution(execution);
    const known = this.messages.get(incoming.id);
    if (!known) {
      this.messages.set(incoming.id, { ...incoming, last_seq: incoming.last_seq || 0 });
      return true;
    }
    const merged = { ...known, ...incoming };
    if ((known.last_seq || 0) > (incoming.last_seq || 0)) {
      merged.content = known.content;
      merged.last_seq = known.last_seq;
    }
    if (FINAL.has(known.status) && BUSY.has(incoming.status)) merged.status = known.status;
    this.messages.set(incoming.id, merged);
    return false;
  }

  /**
   * Apply chunk `seq` of a message. Returns "applied", "duplicate", "gap" (held until the
   * missing seqs arrive) or "unknown" (not a message of this conversation).
   */
  applyChunk(messageId, seq, delta) {
    const message = this.messages.get(messageId);
    if (!message) return "unknown";
    if (seq <= message.last_seq) return "duplicate";
    const early = this.early.get(messageId) || new Map();
    if (early.has(seq)) return "duplicate";
    early.set(seq, delta);
    let applied = false;
    while (early.has(message.last_seq + 1)) {
      const next = message.last_seq + 1;
      message.content = (message.content || "") + early.get(next);
      message.last_seq = next;
      early.delete(next);
      applied = true;
    }
    if (early.size) this.early.set(messageId, early);
    else this.early.delete(messageId);
    if (applied && !FINAL.has(message.status)) message.status = "streaming";
    return early.size ? "gap" : applied ? "applied" : "duplicate";
  }

  hasGap(messageId) {
    return this.early.has(messageId);
  }

  setStatus(messageId, status, extra = {}) {
    const message = this.messages.get(messageId);
    if (!message) return false;
    Object.assign(message, extra, { status });
    return true;
  }

  /** The messages still being generated. */
  busyMessages() {
    return [...this.messages.values()].filter((m) => m.role === "assistant" && BUSY.has(m.status));
  }

  /** Subscribe frames that resume every running stream right after its last applied seq. */
  subscribeFrames() {
    const busy = this.busyMessages();
    if (!busy.length) return [{ type: "subscribe", conversation_id: this.conversationId }];
    return busy.map((m) => ({
      type: "subscribe", conversation_id: this.conversationId, message_id: m.id, after_seq: m.last_seq,
    }));
  }

  children(parentKey) {
    return [...this.messages.values()]
      .filter((m) => m.role !== "system" && (m.parent_id || ROOT) === parentKey)
      .sort(byCreation);
  }

  /** The messages shown: from the root, at each fork the chosen (default: newest) child. */
  activePath() {
    const path = [];
    let key = ROOT;
    for (;;) {
      const kids = this.children(key);
      if (!kids.length) return path;
      const chosen = kids.find((m) => m.id === this.selected.get(key)) || kids[kids.length - 1];
      path.push(chosen);
      key = chosen.id;
    }
  }

  /** The versions of `message` (itself and the siblings of the same role) and its index. */
  versions(message) {
    const list = this.children(message.parent_id || ROOT).filter((m) => m.role === message.role);
    return { list, index: list.findIndex((m) => m.id === message.id) };
  }

  /** Show `message`'s branch from now on. */
  choose(message) {
    this.selected.set(message.parent_id || ROOT, message.id);
  }

  /** Show the branch that ends at `leafId` (the server's active branch). */
  chooseBranchTo(leafId) {
    for (let m = this.messages.get(leafId); m; m = this.messages.get(m.parent_id)) this.choose(m);
  }

  /** The newest message of the shown branch (the parent of the next one sent). */
  lastShown() {
    const path = this.activePath();
    return path[path.length - 1] || null;
  }

  /** Add or refresh a tool call (from an event or a message list), never going back a step. */
  trackExecution(execution) {
    const known = this.executions.get(execution.id);
    if (known && (EXECUTION_STEP[known.status] ?? 0) > (EXECUTION_STEP[execution.status] ?? 0)) return known;
    this.executions.set(execution.id, { ...known, ...execution });
    return this.executions.get(execution.id);
  }

  /** A running answer waits while one of its tool calls waits for the person's decision. */
  noteWaiting(messageId) {
    const message = this.messages.get(messageId);
    if (!message || !BUSY.has(message.status)) return;
    const waiting = this.executionsFor(messageId).some((e) => e.status === "pending_approval");
    if (waiting) message.status = "waiting";
    else if (message.status === "waiting") message.status = "pending";
  }

  executionsFor(messageId) {
    return [...this.executions.values()].filter((e) => e.message_id === messageId);
  }
}

function byCreation(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? -1 : 1;
  return a.role === b.role ? 0 : a.role === "user" ? -1 : 1;
}
