// File attachments: each file is uploaded at once (POST /api/v1/uploads, multipart) with a
// progress bar; the composer sends the ids of those finished. A server without uploads yet
// answers 404, shown as a friendly notice.

import { csrfHeaders, friendlyError, isMissingEndpoint, toApiError } from "../api.js";
import { h } from "../dom.js";

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
    const progress = h("progress", { max: 100, value: 0, attrs: { "aria-label": `Uploading ${file.name}` } });
    const status = h("span", { class: "attachment-status", text: "Uploading…" });
    const remove = h("button", { type: "button", class: "small", text: "Remove", attrs: { "aria-label": `Remove ${file.name}` } });
    const chip = h("li", { class: "attachment" }, h("span", { class: "attachment-name", text: file.name }), progress, status, remove);
    const item = { file, chip, id: null, done: false, xhr: new XMLHttpRequest() };
    this.items.push(item);
    this.listEl.append(chip);
    remove.addEventListener("click", () => this.remove(item));

    const xhr = item.xhr;
    xhr.open("POST", "/api/v1/uploads");
    for (const [name, value] of Object.entries(csrfHeaders())) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => {
      const data = safeJson(xhr.responseText);
      if (xhr.status === 201 || xhr.status === 200) {
        item.id = (data.file || data).id;
        item.done = true;
        progress.value = 100;
        status.textContent = "Ready";
      } else {
        const error = toApiError({ status: xhr.status, statusText: xhr.statusText, headers: { get: (n) => xhr.getResponseHeader(n) } }, data);
        this.fail(item, isMissingEndpoint(error) ? "Uploads are not available on this server yet." : friendlyError(error));
      }
      this.onChange();
    });
    xhr.addEventListener("error", () => { this.fail(item, "Upload failed: can't reach the server."); this.onChange(); });
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
    this.onChange();
  }

  fail(item, message) {
    item.failed = true;
    item.chip.classList.add("failed");
    item.chip.querySelector("progress").remove();
    item.chip.querySelector(".attachment-status").textContent = message;
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

function safeJson(text) {
  try { return JSON.parse(text) || {}; } catch { return {}; }
}
