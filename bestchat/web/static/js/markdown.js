// Markdown to safe DOM: marked renders (GitHub-flavoured: tables, task lists, fenced code),
// DOMPurify sanitizes in an inert document, then code blocks get a language label and a copy
// button, tables a scroll wrapper, and links open in a new tab with rel=noopener. Images load
// only from this server's uploads or data: URIs; any other image becomes a plain link, so a
// message can never make the browser contact another host.

import { Marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.js";
import { copyButton, h } from "./dom.js";

const marked = new Marked({ gfm: true, breaks: false, async: false });
const purify = DOMPurify(window);

const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "button", "textarea", "select", "option", "dialog", "template"],
  FORBID_ATTR: ["style", "id", "name", "srcset", "formaction", "autofocus"],
  RETURN_DOM_FRAGMENT: true,
};

purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  } else if (node.tagName === "IMG") {
    const src = node.getAttribute("src") || "";
    if (!isAllowedImage(src)) {
      node.removeAttribute("src"); // removed in the inert document: no request is ever made
      node.setAttribute("data-blocked-src", src);
    }
  } else if (node.tagName === "INPUT") {
    node.setAttribute("disabled", ""); // task-list checkboxes are display only
  }
});

function isAllowedImage(src) {
  if (/^data:image\/(png|gif|jpe?g|webp);/i.test(src)) return true;
  try {
    const url = new URL(src, location.origin);
    return url.origin === location.origin && url.pathname.startsWith("/api/v1/uploads/");
  } catch {
    return false;
  }
}

/** Render Markdown `text` into a sanitized DocumentFragment ready to insert. */
export function renderMarkdown(text) {
  const fragment = purify.sanitize(marked.parse(text || ""), PURIFY_CONFIG);
  for (const img of fragment.querySelectorAll("img[data-blocked-src]")) img.replaceWith(blockedImage(img));
  for (const code of fragment.querySelectorAll("pre > code")) decorateCode(code);
  for (const table of fragment.querySelectorAll("table")) {
    const wrap = h("div", { class: "table-wrap", tabIndex: 0, attrs: { role: "region", "aria-label": "Table" } });
    table.replaceWith(wrap);
    wrap.append(table);
  }
  return fragment;
}

function blockedImage(img) {
  const src = img.getAttribute("data-blocked-src");
  const label = `Image: ${img.getAttribute("alt") || "untitled"} (not loaded)`;
  if (/^https?:\/\//i.test(src)) {
    return h("a", { href: src, text: label, class: "blocked-image", target: "_blank", rel: "noopener noreferrer nofollow" });
  }
  return h("span", { class: "blocked-image", text: label });
}

function decorateCode(code) {
  const pre = code.parentElement;
  const match = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
  const language = match ? match[1] : "text";
  const block = h("div", { class: "codeblock" },
    h("div", { class: "codeblock-head" },
      h("span", { class: "codeblock-lang", text: language }),
      copyButton(() => code.textContent, "Copy code")));
  pre.replaceWith(block);
  block.append(pre);
  pre.tabIndex = 0; // long lines scroll: reachable by keyboard
}
