// A tool call as a card: the tool, its arguments, its result, and, while it waits for the
// person's decision, Approve / Deny / Always allow buttons.

import { h } from "../dom.js";

const STATUS_LABELS = {
  pending_approval: "Waiting for your approval", approved: "Approved", denied: "Denied",
  running: "Running…", succeeded: "Done", failed: "Failed", timed_out: "Timed out",
};

/** `onDecide(execution, decision, remember)` is called with "approve" or "deny". */
export function toolCard(execution, onDecide) {
  const status = STATUS_LABELS[execution.status] || execution.status || "Requested";
  const card = h("section", { class: `toolcard status-${execution.status || "unknown"}`, attrs: { "aria-label": `Tool call: ${execution.tool}` } },
    h("header", { class: "toolcard-head" },
      h("span", { class: "toolcard-tool", text: `Tool: ${execution.tool}` }),
      execution.risk ? h("span", { class: "badge", text: `risk: ${execution.risk}` }) : null,
      h("span", { class: "toolcard-status", text: status })),
    h("details", { open: execution.status === "pending_approval" },
      h("summary", { text: "Arguments" }),
      h("pre", { class: "toolcard-json", tabIndex: 0, text: pretty(execution.arguments) })));
  if (execution.result !== undefined && execution.result !== null || execution.error) {
    card.append(h("details", { open: true },
      h("summary", { text: execution.error ? "Error" : "Result" }),
      h("pre", { class: "toolcard-json", tabIndex: 0, text: pretty(execution.error || execution.result) })));
  }
  if (execution.status === "pending_approval") {
    const decide = (decision, remember) => (event) => {
      for (const button of card.querySelectorAll(".toolcard-actions button")) button.disabled = true;
      event.currentTarget.textContent += "…";
      onDecide(execution, decision, remember);
    };
    card.append(h("div", { class: "toolcard-actions", attrs: { role: "group", "aria-label": "Approve this tool call?" } },
      h("button", { type: "button", class: "primary", text: "Approve", on: { click: decide("approve", false) } }),
      h("button", { type: "button", text: "Deny", on: { click: decide("deny", false) } }),
      h("button", { type: "button", text: "Always allow", on: { click: decide("approve", true) } })));
  }
  return card;
}

function pretty(value) {
  if (typeof value === "string") return value;
  try { return JSON.stringify(value ?? {}, null, 2); } catch { return String(value); }
}
