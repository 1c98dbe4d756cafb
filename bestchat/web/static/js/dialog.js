// A modal confirmation built on <dialog> (focus is trapped and restored by the browser).

import { h } from "./dom.js";

/** Ask a yes/no question; resolves true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = "OK", danger = false }) {
  return new Promise((resolve) => {
    const titleId = `dialog-title-${Date.now()}`;
    const cancel = h("button", { type: "button", text: "Cancel" });
    const confirm = h("button", { type: "button", class: danger ? "danger" : "primary", text: confirmLabel });
    const dialog = h("dialog", { class: "dialog", attrs: { "aria-labelledby": titleId } },
      h("h2", { id: titleId, text: title }),
      message ? h("p", { text: message }) : null,
      h("div", { class: "dialog-actions" }, cancel, confirm));
    const finish = (answer) => { dialog.close(); dialog.remove(); resolve(answer); };
    cancel.addEventListener("click", () => finish(false));
    confirm.addEventListener("click", () => finish(true));
    dialog.addEventListener("cancel", (event) => { event.preventDefault(); finish(false); });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
