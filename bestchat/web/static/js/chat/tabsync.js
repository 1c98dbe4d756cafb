// Keeps the tabs of one browser in step for what the WebSocket does not carry: conversation
// list changes (created, renamed, deleted) and signing out. Messages themselves arrive in
// every tab through the WebSocket.

const channel = "BroadcastChannel" in window ? new BroadcastChannel("bestchat") : null;
const listeners = new Set();

if (channel) channel.addEventListener("message", (event) => { for (const fn of listeners) fn(event.data); });

/** Tell the other tabs (never this one). */
export function broadcast(message) {
  if (channel) channel.postMessage(message);
}

export function onBroadcast(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
