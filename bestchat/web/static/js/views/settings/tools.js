// Settings › Tool approvals: whether this server can sandbox tools, and the person's standing
// choices (always allow / ask me / never), per risk level and per tool, from
// /api/v1/tool-approvals. "Default" removes a choice.

import { api, friendlyError } from "../../api.js";
import { h, replaceChildren, uid } from "../../dom.js";

const RISKS = ["low", "medium", "high"];
const CHOICES = [["always", "Always allow"], ["ask", "Ask me"], ["never", "Never"]];
const RISK_DEFAULTS = { low: "Default (always allow)", medium: "Default (ask me)", high: "Default (ask me)" };
const EFFECTIVE = { always: "runs without asking", ask: "asks you first", never: "never runs" };

export function toolApprovalsSection() {
  const sandbox = h("div", { class: "notice sandbox-status", attrs: { "aria-live": "polite" } }, "Checking the sandbox…");
  const risks = h("ul", { class: "item-list", attrs: { "aria-label": "Approval by risk level" } });
  const tools = h("ul", { class: "item-list", attrs: { "aria-label": "Approval by tool" } });
  const saved = h("p", { class: "muted", attrs: { role: "status" } });
  const error = h("p", { class: "form-error", attrs: { role: "alert" } });
  const section = h("section", { class: "card", attrs: { "aria-labelledby": "tool-approvals-title" } },
    h("h2", { id: "tool-approvals-title", text: "Tool approvals" }),
    h("p", { class: "muted", text: "Whether a tool call runs at once, waits for you in its card, or is refused. "
      + "A choice for a tool comes before the one for its risk level. “Always allow” counts only up to "
      + "the limit the server's administrator set (by default a high-risk call always asks)." }),
    sandbox,
    h("h3", { text: "By risk level" }), risks,
    h("h3", { text: "By tool" }), tools, saved, error);

  // key ("risk:low", "tool:calculator") -> {select, about, setting}; refreshed in place after a
  // change, so the control the person used keeps its focus.
  const rows = new Map();

  async function load() {
    try {
      const [catalog, approvals] = await Promise.all([api("GET", "/tools"), api("GET", "/tool-approvals")]);
      const settings = approvals.settings || [];
      const list = catalog.tools || [];
      showSandbox(catalog.sandbox);
      const keys = [...RISKS.map((r) => `risk:${r}`), ...list.map((t) => `tool:${t.name}`)];
      if (keys.join() !== [...rows.keys()].join()) {
        rows.clear();
        replaceChildren(risks, RISKS.map((risk) => row(`risk:${risk}`, `${risk[0].toUpperCase()}${risk.slice(1)} risk`,
          { risk_level: risk }, RISK_DEFAULTS[risk])));
        replaceChildren(tools, list.length
          ? list.map((tool) => row(`tool:${tool.name}`, tool.name, { tool: tool.name }, "Use its risk level's choice"))
          : h("li", { class: "muted", text: "No tools are installed on this server." }));
      }
      for (const risk of RISKS) refresh(`risk:${risk}`, settings.find((s) => s.risk_level === risk));
      for (const tool of list) {
        refresh(`tool:${tool.name}`, settings.find((s) => s.tool === tool.name),
          `risk: ${tool.risk}; now ${EFFECTIVE[tool.approval] || tool.approval}`
            + (tool.runnable ? "" : "; cannot run here: no sandbox"));
      }
    } catch (err) {
      error.textContent = friendlyError(err);
    }
  }

  function showSandbox(status) {
    if (!status) return;
    sandbox.dataset.available = String(Boolean(status.available));
    replaceChildren(sandbox,
      h("strong", { text: status.available ? `Sandbox: ${status.method}` : "No sandbox" }), " ",
      h("span", { text: status.available ? "Tools run isolated from the server."
        : "Medium- and high-risk tools are refused on this server." }),
      status.detail ? h("small", { class: "hint", text: status.detail }) : null);
  }

  /** One choice: `target` is {tool} or {risk_level}. */
  function row(key, label, target, defaultLabel) {
    const id = uid("approval");
    const about = h("small", { id: `${id}-about`, class: "hint" });
    const select = h("select", { id, class: "approval-select", attrs: { "aria-describedby": about.id } },
      h("option", { value: "", text: defaultLabel }),
      CHOICES.map(([value, text]) => h("option", { value, text })));
    const state = { select, about, setting: null };
    rows.set(key, state);
    select.addEventListener("change", () => save(state, target));
    return h("li", { class: "item" },
      h("span", { class: "item-main" }, h("label", { htmlFor: id, text: label }), about),
      h("span", { class: "item-actions" }, select));
  }

  function refresh(key, setting, about = "") {
    const state = rows.get(key);
    state.setting = setting || null;
    state.select.value = setting ? setting.decision : "";
    state.about.textContent = about;
  }

  async function save(state, target) {
    error.textContent = "";
    saved.textContent = "";
    try {
      if (state.select.value) await api("PUT", "/tool-approvals", { ...target, decision: state.select.value });
      else if (state.setting) await api("DELETE", `/tool-approvals/${state.setting.id}`);
      saved.textContent = "Saved.";
    } catch (err) {
      error.textContent = friendlyError(err);
    }
    await load();
  }

  load();
  return section;
}
