// The message box: model picker, attachments (the paperclip's file picker, files pasted into
// the box; drops on the chat are wired by the chat page through addFiles), textarea (Enter
// sends, Shift+Enter adds a line) and a Send button that becomes Stop while an answer is being
// generated. Send waits until every attachment has finished uploading.

import { h, uid } from "../dom.js";
import { icon } from "../icons.js";
import { Attachments, pastedFiles } from "./uploads.js";

const MODEL_KEY = "bestchat.model";

/** A picker entry: the model id, after its display name when its connection gives one. */
function modelLabel(model) {
  if (!model.id) return model.name;
  const plain = model.provider ? model.id.slice(model.provider.length + 1) : model.id;
  return model.name && model.name !== plain && model.name !== model.id ? `${model.name} (${model.id})` : model.id;
}

/** `handlers`: onSend({content, model, attachments}), onStop(), onTyping(). */
export class Composer {
  constructor(handlers) {
    this.handlers = handlers;
    this.busy = false;
    this.modelSelect = h("select", { id: uid("model"), class: "model-select" },
      h("option", { value: "", text: "Loading models…" }));
    this.modelSelect.addEventListener("change", () => localStorage.setItem(MODEL_KEY, this.modelSelect.value));
    this.textarea = h("textarea", {
      id: "composer-input", rows: 1, placeholder: "Message BestChat", attrs: { "aria-label": "Message", "aria-describedby": "composer-help" },
    });
    this.fileInput = h("input", { type: "file", multiple: true, class: "offscreen", tabIndex: -1, attrs: { "aria-hidden": "true" } });
    this.attachButton = h("button", { type: "button", class: "icon attach", attrs: { "aria-label": "Attach files" } }, icon("attach"));
    this.sendButton = h("button", { type: "submit", class: "primary send", text: "Send" });
    this.stopButton = h("button", { type: "button", class: "danger stop", text: "Stop", hidden: true, attrs: { "aria-label": "Stop generating" } });
    const attachmentList = h("ul", { class: "attachments", attrs: { "aria-label": "Attached files" } });
    this.attachments = new Attachments(attachmentList, () => this.refresh());

    this.form = h("form", { class: "composer", attrs: { "aria-label": "Send a message" } },
      h("div", { class: "composer-row composer-options" },
        h("label", { htmlFor: this.modelSelect.id, text: "Model" }), this.modelSelect),
      attachmentList,
      h("div", { class: "composer-row" }, this.attachButton, this.fileInput, this.textarea, this.sendButton, this.stopButton),
      h("p", { id: "composer-help", class: "hint", text: "Enter to send, Shift+Enter for a new line." }));

    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.submit(); });
    this.textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.textarea.addEventListener("input", () => { this.autosize(); this.refresh(); this.handlers.onTyping(); });
    this.attachButton.addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => { this.addFiles([...this.fileInput.files]); this.fileInput.value = ""; });
    this.textarea.addEventListener("paste", (event) => {
      const files = pastedFiles(event);
      if (!files.length) return;
      // Files are attached; text that came along (a copied document) is still pasted as text.
      if (!event.clipboardData.getData("text/plain")) event.preventDefault();
      this.addFiles(files);
    });
    this.stopButton.addEventListener("click", () => this.handlers.onStop());
    this.refresh();
  }

  /** Attach `files` (each starts uploading at once). */
  addFiles(files) {
    this.attachments.add(files);
  }

  /** Fill the picker from GET /api/v1/models (a display name set for a connection's model
   * shows before its id): keep the last choice, else the server default. */
  setModels(models, serverDefault, conversationModel) {
    const wanted = conversationModel || localStorage.getItem(MODEL_KEY) || serverDefault;
    this.modelSelect.replaceChildren(...(models.length ? models : [{ id: "", name: "No models available" }])
      .map((m) => h("option", { value: m.id, text: modelLabel(m) })));
    if (models.some((m) => m.id === wanted)) this.modelSelect.value = wanted;
  }

  selectModel(modelId) {
    if (modelId && [...this.modelSelect.options].some((o) => o.value === modelId)) this.modelSelect.value = modelId;
  }

  /** While an answer is generated: Stop instead of Send, and Enter does not send. */
  setBusy(busy) {
    this.busy = busy;
    this.refresh();
  }

  refresh() {
    const hadFocus = document.activeElement === this.stopButton || document.activeElement === this.sendButton;
    this.sendButton.hidden = this.busy;
    this.stopButton.hidden = !this.busy;
    this.sendButton.disabled = this.busy || !this.textarea.value.trim() || this.attachments.uploading;
    this.textarea.setAttribute("aria-busy", this.busy ? "true" : "false");
    if (hadFocus && document.activeElement === document.body) (this.busy ? this.stopButton : this.textarea).focus();
  }

  submit() {
    const content = this.textarea.value.trim();
    if (this.busy || !content || this.attachments.uploading) return;
    const attachments = this.attachments.ids();
    this.handlers.onSend({ content, model: this.modelSelect.value || undefined, attachments: attachments.length ? attachments : undefined });
  }

  /** The message was accepted: empty the box. */
  clear() {
    this.textarea.value = "";
    this.attachments.clear();
    this.autosize();
    this.refresh();
  }

  focus() {
    this.textarea.focus();
  }

  autosize() {
    this.textarea.style.height = "auto";
    this.textarea.style.height = `${Math.min(this.textarea.scrollHeight, 240)}px`;
  }
}
