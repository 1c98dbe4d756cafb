// File attachments in the composer: each file (picked, dropped or pasted) is uploaded at once
// (POST /api/v1/uploads, multipart, XHR for its progress bar) and shown as a chip with its name,
// size, a thumbnail for images, its progress and a Remove button. The composer sends the ids of
// the finished ones. The server decides what it accepts (size limit, types): its refusal is
// shown in the chip in its own words.

import { csrfHeaders, friendlyError, toApiError } from "../api.js";
import { h } from "../dom.js";
import { bytes, count } from "../format.js";

// Images up to this size get a thumbnail in their chip. It is a data: URL, read in the browser:
// the page's Content-Security-Policy allows images from data: but not from blob: URLs.
const PREVIEW_MAX_BYTES = 10 * 1024 * 1024;

export class Attachments {
  constructor(listEl, onChange) {
    this.listEl = listEl;
    this.onChange = onChange;
    this.items = [];
  }

  add(files) {
    for (const file of files) this.upload(file);
  }

  upload(file) {
    const name = file.name || defaultName(file);
    const progress = h("progress", { max: 100, value: 0, attrs: { "aria-label": `Uploading ${name}` } });
    const status = h("span", { class: "attachment-status", text: "Uploading…", attrs: { "aria-live": "polite" } });
    const about = h("span", { class: "attachment-about", text: bytes(file.size) });
    const remove = h("button", { type: "button", class: "small", text: "Remove", attrs: { "aria-label": `Remove ${name}` } });
    const chip = h("li", { class: "attachment", dataset: { name } },
      thumbnail(file),
      h("span", { class: "attachment-name", text: name, title: name }), about, progress, status, remove);
    const item = { file, chip, id: null, done: false, failed: false, xhr: new XMLHttpRequest() };
    this.items.push(item);
    this.listEl.append(chip);
    remove.addEventListener("click", () => this.remove(item));

    const xhr = item.xhr;
    xhr.open("POST", "/api/v1/uploads");
    for (const [header, value] of Object.entries(csrfHeaders())) xhr.setRequestHeader(header, value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => {
      const data = safeJson(xhr.responseText);
      if ((xhr.status === 201 || xhr.status === 200) && data.id) {
        this.ready(item, data);
      } else {
        const error = toApiError({ status: xhr.status, statusText: xhr.statusText, headers: { get: (n) => xhr.getResponseHeader(n) } }, data);
        this.fail(item, friendlyError(error));
      }
      this.onChange();
    });
    xhr.addEventListener("error", () => { this.fail(item, "Upload failed: can't reach the server."); this.onChange(); });
    const form = new FormData();
    form.append("file", file, name);
    xhr.send(form);
    this.onChange();
  }

  /** The server stored the file: keep its id, say what the model will get from it. */
  ready(item, upload) {
    item.id = upload.id;
    item.done = true;
    item.chip.classList.add("ready");
    item.chip.querySelector("progress").remove();
    item.chip.querySelector(".attachment-status").textContent = "Ready";
    const notes = [bytes(upload.size ?? item.file.size)];
    if (upload.text_tokens != null) notes.push(`${count(upload.text_tokens)} tokens`);
    const details = upload.details || {};
    if (details.pages != null) notes.push(`${count(details.pages)} ${details.pages === 1 ? "page" : "pages"}`);
    if (details.truncated) notes.push("text cut short");
    if (details.note) notes.push(details.note);
    item.chip.querySelector(".attachment-about").textContent = notes.join(" · ");
  }

  fail(item, message) {
    item.failed = true;
    item.chip.classList.add("failed");
    const progress = item.chip.querySelector("progress");
    if (progress) progress.remove();
    const status = item.chip.querySelector(".attachment-status");
    status.textContent = message;
    status.setAttribute("role", "alert");
  }

  remove(item) {
    if (!item.done && !item.failed) item.xhr.abort();
    item.chip.remove();
    this.items = this.items.filter((i) => i !== item);
    this.onChange();
  }

  get uploading() {
    return this.items.some((i) => !i.done && !i.failed);
  }

  /** Ids of the finished uploads, to send with the message. */
  ids() {
    return this.items.filter((i) => i.done).map((i) => i.id);
  }

  clear() {
    for (const item of this.items) item.chip.remove();
    this.items = [];
    this.onChange();
  }
}

/** A local preview of an image file (filled in once read), else nothing. */
function thumbnail(file) {
  if (!file.type || !file.type.startsWith("image/") || file.size > PREVIEW_MAX_BYTES) return null;
  const img = h("img", { class: "attachment-thumb", alt: "" });
  const reader = new FileReader();
  reader.addEventListener("load", () => { img.src = reader.result; });
  reader.readAsDataURL(file);
  return img;
}

/** A pasted image has no name of its own (or a generic one): name it after its type. */
function defaultName(file) {
  const ext = (file.type || "").split("/")[1] || "bin";
  return `pasted.${ext.replace(/[^a-z0-9]/gi, "") || "bin"}`;
}

function safeJson(text) {
  try { return JSON.parse(text) || {}; } catch { return {}; }
}

/**
 * Let files be dropped anywhere on `area`: while files are dragged over it, a drop zone covers
 * it ("Drop files to attach"); dropped files go to `onFiles`. Dragged text is left alone.
 */
export function dropZone(area, onFiles) {
  const zone = h("div", { class: "drop-zone", hidden: true, attrs: { "aria-hidden": "true" } },
    h("p", { text: "Drop files to attach" }));
  area.append(zone);
  let depth = 0; // dragenter/dragleave fire for every child crossed
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  const hide = () => { depth = 0; zone.hidden = true; area.classList.remove("dragging"); };
  area.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    zone.hidden = false;
    area.classList.add("dragging");
  });
  area.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  area.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth -= 1;
    if (depth <= 0) hide();
  });
  area.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    hide();
    const files = [...event.dataTransfer.files];
    if (files.length) onFiles(files);
  });
  return zone;
}

/** The files of a paste event (an image copied to the clipboard, files copied in a file manager). */
export function pastedFiles(event) {
  const data = event.clipboardData;
  if (!data) return [];
  if (data.files && data.files.length) return [...data.files];
  return [...(data.items || [])].filter((item) => item.kind === "file").map((item) => item.getAsFile()).filter(Boolean);
}
