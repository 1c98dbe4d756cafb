// Short notices in the corner (announced politely to screen readers), e.g. "Copied".

import { h } from "./dom.js";

export function toast(message, { kind = "info", timeout = 4000 } = {}) {
  const box = document.getElementById("toasts");
  const item = h("p", { class: `toast toast-${kind}`, text: message });
  box.append(item);
  setTimeout(() => item.remove(), timeout);
}
