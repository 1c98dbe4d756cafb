// One message as an <article>: author, version switcher for edited/regenerated branches,
// attachments (chips linking to the stored file, thumbnails for images), the body (user text as
// plain text, assistant text as sanitized Markdown), tool cards, an inline error with Retry, a
// muted note on how the conversation was fitted into the model's window, and the actions
// (copy, edit, regenerate).

import { copyButton, h, replaceChildren } from "../dom.js";
import { count } from "../format.js";
import { icon } from "../icons.js";
import { renderMarkdown } from "../markdown.js";
import { BUSY } from "./store.js";
import { toolCard } from "./toolcard.js";

// A queued answer waits for a free generation slot (the server is at capacity).
const QUEUED_NOTE = "Queued: the server is busy, this answer starts as soon as a slot is free.";

// A waiting answer is paused until the person approves or denies a tool call (its card below).
const WAITING_NOTE = "Waiting for your decision on a tool call below.";

const STATUS_NOTES = {
  waiting: WAITING_NOTE,
  cancelled: "Stopped.",
  interrupted: "The answer was interrupted.",
};

/**
 * `actions`: onEdit(message, text), onRegenerate(message), onChoose(message),
 * onDecide(execution, decision, remember).
 */
export function messageView(message, store, actions) {
  const author = message.role === "user" ? "You" : message.role === "tool" ? "Tool" : "Assistant";
  const article = h("article", {
    class: `message role-${message.role}`,
    dataset: { messageId: message.id },
    attrs: { "aria-label": `${author} message` },
  });
  const head = h("header", { class: "message-head" },
    h("span", { class: "message-author", text: author }),
    message.role === "assistant" && message.model ? h("span", { class: "message-model", text: message.model }) : null,
    versionSwitcher(message, store, actions));
  replaceChildren(article, head, attachmentList(message), h("div", { class: "message-body" }),
    h("div", { class: "message-tools" }), h("div", { class: "message-error" }),
    h("p", { class: "context-note" }), h("footer", { class: "message-actions" }));
  updateMessageView(article, message, store, actions);
  return article;
}

/** Refresh what changes while a message streams: body, status, tool cards, error, actions. */
export function updateMessageView(article, message, store, actions) {
  const busy = BUSY.has(message.status);
  article.className = `message role-${message.role} status-${message.status}`;
  article.setAttribute("aria-busy", busy ? "true" : "false");
  renderBody(article.querySelector(".message-body"), message, busy);
  replaceChildren(article.querySelector(".message-tools"),
    store.executionsFor(message.id).map((execution) => toolCard(execution, actions.onDecide)));
  replaceChildren(article.querySelector(".message-error"), errorBox(message, actions));
  article.querySelector(".context-note").textContent = busy ? "" : contextNote(message);
  replaceChildren(article.querySelector(".message-actions"), busy ? [] : actionButtons(article, message, actions));
}

function renderBody(body, message, busy) {
  if (message.role === "user") {
    replaceChildren(body, h("p", { class: "plain", text: message.content }));
    return;
  }
  body.classList.add("markdown");
  if (busy && !message.content) {
    replaceChildren(body, h("span", { class: "thinking", attrs: { role: "img", "aria-label": "Assistant is thinking" } },
      h("span"), h("span"), h("span")),
      message.status === "queued" ? h("p", { class: "status-note queued-note", text: QUEUED_NOTE }) : null,
      message.status === "waiting" ? h("p", { class: "status-note waiting-note", text: WAITING_NOTE }) : null);
    return;
  }
  replaceChildren(body, renderMarkdown(message.content));
  const note = STATUS_NOTES[message.status];
  if (note) body.append(h("p", { class: "status-note", text: note }));
}

function errorBox(message, actions) {
  if (message.status !== "failed" && message.status !== "interrupted") return null;
  if (message.status === "interrupted" && !message.error) {
    return h("div", { class: "error-inline" },
      h("button", { type: "button", class: "small", text: "Retry", on: { click: () => actions.onRegenerate(message) } }));
  }
  return h("div", { class: "error-inline", attrs: { role: "alert" } },
    h("span", { text: `Error: ${errorText(message.error)}` }),
    h("button", { type: "button", class: "small", text: "Retry", on: { click: () => actions.onRegenerate(message) } }));
}

export function errorText(error) {
  if (!error) return "the answer failed.";
  if (typeof error === "string") return error;
  return error.message || error.code || "the answer failed.";
}

function actionButtons(article, message, actions) {
  if (message.role === "user") {
    return [h("button", { type: "button", class: "small", text: "Edit", on: { click: () => startEdit(article, message, actions) } })];
  }
  if (message.role !== "assistant") return [];
  const buttons = [copyButton(() => message.content || "", "Copy")];
  if (message.status !== "failed") {
    buttons.push(h("button", { type: "button", class: "small", text: "Regenerate", on: { click: () => actions.onRegenerate(message) } }));
  }
  return buttons;
}

function startEdit(article, message, actions) {
  const area = h("textarea", { value: message.content, rows: 3, attrs: { "aria-label": "Edit your message" } });
  const form = h("form", { class: "edit-form" }, area,
    h("div", { class: "edit-actions" },
      h("button", { type: "submit", class: "primary small", text: "Send edit" }),
      h("button", { type: "button", class: "small", text: "Cancel", on: { click: () => cancel() } })));
  const body = article.querySelector(".message-body");
  const cancel = () => { form.replaceWith(body); article.querySelector(".message-actions").hidden = false; };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value.trim();
    if (text) actions.onEdit(message, text);
    cancel();
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
  });
  article.querySelector(".message-actions").hidden = true;
  body.replaceWith(form);
  area.focus();
}

function versionSwitcher(message, store, actions) {
  const { list, index } = store.versions(message);
  if (list.length < 2) return null;
  const go = (offset) => () => actions.onChoose(list[index + offset]);
  return h("span", { class: "versions", attrs: { role: "group", "aria-label": "Versions" } },
    h("button", { type: "button", class: "small icon", text: "‹", disabled: index === 0, attrs: { "aria-label": "Previous version" }, on: { click: go(-1) } }),
    h("span", { class: "versions-count", text: `${index + 1} / ${list.length}` }),
    h("button", { type: "button", class: "small icon", text: "›", disabled: index === list.length - 1, attrs: { "aria-label": "Next version" }, on: { click: go(1) } }));
}

/**
 * "Context: summarize, truncate · 96,812 of 124,000 tokens sent" when a strategy changed what the
 * model was sent for this answer (its `meta.context`); empty otherwise.
 */
export function contextNote(message) {
  const context = message.meta && message.meta.context;
  if (!context || !Array.isArray(context.strategies) || !context.strategies.length) return "";
  const sent = context.prompt_tokens != null && context.budget != null
    ? ` · ${count(context.prompt_tokens)} of ${count(context.budget)} tokens sent` : "";
  return `Context: ${context.strategies.join(", ")}${sent}`;
}

// Whether each upload still exists (its metadata answers), asked once per page load.
const uploadChecks = new Map();

function checkUpload(uploadId) {
  if (!uploadChecks.has(uploadId)) {
    uploadChecks.set(uploadId, fetch(`/api/v1/uploads/${encodeURIComponent(uploadId)}`, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    }).then((response) => response.status !== 404, () => true));
  }
  return uploadChecks.get(uploadId);
}

/** A user message's files: chips linking to their bytes; images as lazy thumbnails. */
function attachmentList(message) {
  const files = (message.parts || []).filter((part) => part && part.type === "file");
  if (!files.length) return null;
  return h("ul", { class: "message-attachments", attrs: { "aria-label": "Attachments" } }, files.map(attachmentChip));
}

function attachmentChip(file) {
  const id = file.upload_id || file.id;
  const name = file.name || "file";
  const isImage = (file.mime || "").startsWith("image/");
  const chip = h("li", { class: `attachment${isImage ? " attachment-image" : ""}`, dataset: { uploadId: id || "" } });
  if (!id) return replaceChildren(chip, icon("file"), h("span", { class: "attachment-name", text: name }));
  const url = `/api/v1/uploads/${encodeURIComponent(id)}/content`;
  const link = h("a", { href: url, target: "_blank", rel: "noopener", title: file.mime ? `${name} (${file.mime})` : name },
    isImage ? h("img", { class: "attachment-thumb", src: url, alt: name, loading: "lazy", decoding: "async" }) : icon("file"),
    h("span", { class: "attachment-name", text: name }));
  replaceChildren(chip, link);
  checkUpload(id).then((exists) => {
    if (exists) return;
    chip.classList.add("deleted");
    replaceChildren(chip, icon(isImage ? "image" : "file"), h("span", { class: "attachment-name", text: name }),
      h("span", { class: "attachment-status", text: "deleted" }));
  });
  return chip;
}
