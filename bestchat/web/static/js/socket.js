// The live connection: one WebSocket to /ws (same origin, session cookie) that reconnects on its
// own with exponential backoff and jitter, pings to keep itself alive, and reports its state
// for the connection indicator. On every (re)connect it sends the subscribe frames its owner
// returns from `subscriptions()`, which carry each stream's last seq so nothing is lost.

const PING_EVERY_MS = 20000;
const SILENCE_LIMIT_MS = 50000; // no frame at all for this long: the connection is dead
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class LiveSocket {
  constructor({ subscriptions }) {
    this.subscriptions = subscriptions;
    this.listeners = new Map();
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.stopped = false;
    this.timers = {};
    this.lastFrameAt = 0;
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => { if (!document.hidden) this.reconnectNow(); });
  }

  /** Listen to server frames of `type` (or "status" for connection state changes). */
  on(type, handler) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(handler);
    return () => this.listeners.get(type).delete(handler);
  }

  emit(type, detail) {
    for (const handler of this.listeners.get(type) || []) {
      try { handler(detail); } catch (error) { console.error(`handler for ${type} failed`, error); }
    }
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timers.retry);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.setState("connecting");
    ws.addEventListener("open", () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.setState("open");
      for (const frame of this.subscriptions()) this.send(frame);
      this.keepAlive();
    });
    ws.addEventListener("message", (event) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame && typeof frame.type === "string") this.emit(frame.type, frame);
    });
    ws.addEventListener("close", () => { if (ws === this.ws) this.dropped(); });
  }

  /** Send a frame now; false when the socket is not open (the caller may fall back to REST). */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Close for good (sign-out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    this.setState("idle");
  }

  reconnectNow() {
    if (this.stopped || this.state !== "closed") return;
    this.attempt = 0;
    this.connect();
  }

  dropped() {
    clearInterval(this.timers.ping);
    this.ws = null;
    if (this.stopped) return;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.setState("closed", Math.round(delay));
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  keepAlive() {
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(() => {
      if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS && this.ws) {
        const dead = this.ws;
        this.ws = null; // its late close event is ignored: reconnect now
        dead.close();
        this.dropped();
        return;
      }
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  setState(state, retryInMs = null) {
    this.state = state;
    this.emit("status", { state, retryInMs });
  }
}
