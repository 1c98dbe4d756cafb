// The usage page: tokens and cost per day as an SVG chart, the period's totals and a table per
// model, from GET /api/v1/usage?from=&to= (UTC days). A cost the server could not price is
// null there and shown as "unknown", never as $0. When the server reports them, the user's
// plan and limits (used, limit, remaining, when each resets and where it comes from) come
// first, with a link to the plan page.

import { api, friendlyError } from "../api.js";
import { h } from "../dom.js";
import { costText, count, money, whenText } from "../format.js";
import { usageChart } from "./usage-chart.js";

const PERIODS = [[7, "7 days"], [30, "30 days"], [90, "90 days"], [366, "12 months"]];
const DEFAULT_DAYS = 30;

const LIMIT_NAMES = {
  requests_per_minute: "Requests per minute",
  tokens_per_day: "Tokens per day",
  cost_per_month: "Cost per month",
  concurrent_generations: "Answers at the same time",
};
const SOURCE_TEXT = { user: "set for your account", group: "from your group", plan: "from your plan" };

/** The period asked for in the address (`/usage?days=90`), else 30 days. */
function periodDays() {
  const asked = Number(new URLSearchParams(location.search).get("days"));
  return PERIODS.some(([days]) => days === asked) ? asked : DEFAULT_DAYS;
}

export async function usageView(container) {
  document.title = "Usage – BestChat";
  const days = periodDays();
  const body = h("div", { class: "usage-body" }, h("p", { class: "muted", text: "Loading…" }));
  container.replaceChildren(h("div", { class: "page" }, h("h1", { text: "Usage" }),
    periodPicker(days, container), body));
  const range = lastDays(days);
  try {
    const data = await api("GET", `/usage?from=${range[0]}&to=${range[range.length - 1]}`);
    const { perDay, perModel } = normalize(data, range);
    body.replaceChildren(
      data.limits ? limitsPanel(data.plan, data.limits) : "",
      h("section", { class: "card", attrs: { "aria-labelledby": "usage-chart-title" } },
        h("h2", { id: "usage-chart-title", text: "Per day" }), usageChart(perDay), totals(data.totals, perDay)),
      h("section", { class: "card", attrs: { "aria-labelledby": "usage-models-title" } },
        h("h2", { id: "usage-models-title", text: "Per model" }), modelTable(perModel)));
  } catch (error) {
    body.replaceChildren(h("p", { class: "notice", text: friendlyError(error) }));
  }
}

function periodPicker(days, container) {
  const select = h("select", { id: "usage-period" },
    PERIODS.map(([value, text]) => h("option", { value: String(value), text: `Last ${text}`, selected: value === days })));
  select.addEventListener("change", () => {
    history.replaceState(null, "", `/usage?days=${select.value}`);
    usageView(container);
  });
  return h("p", { class: "usage-period" }, h("label", { htmlFor: select.id, text: "Period " }), select,
    h("span", { class: "muted", text: " (UTC days)" }));
}

/** The last `count` days as YYYY-MM-DD (UTC), oldest first. */
function lastDays(n) {
  const today = new Date();
  return Array.from({ length: n }, (_, i) => {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (n - 1 - i)));
    return d.toISOString().slice(0, 10);
  });
}

/** Per-day rows for every day shown (the server sends zeros for empty days) and per-model rows. */
function normalize(data, days) {
  const byDay = new Map(data.days.map((d) => [d.date, d]));
  const empty = (date) => ({ date, prompt_tokens: 0, completion_tokens: 0, cost: 0, requests: 0, unknown_cost_requests: 0 });
  return { perDay: days.map((d) => byDay.get(d) || empty(d)), perModel: data.models };
}

/** The period's totals line: the server's totals, else the sum of the days. */
function totals(reported, perDay) {
  const sum = reported || perDay.reduce((t, d) => ({
    prompt_tokens: t.prompt_tokens + (Number(d.prompt_tokens) || 0),
    completion_tokens: t.completion_tokens + (Number(d.completion_tokens) || 0),
    cost: d.cost === null ? t.cost : (t.cost || 0) + (Number(d.cost) || 0),
    unknown_cost_requests: t.unknown_cost_requests + (Number(d.unknown_cost_requests) || 0),
  }), { prompt_tokens: 0, completion_tokens: 0, cost: null, unknown_cost_requests: 0 });
  const prompt = Number(sum.prompt_tokens) || 0;
  const completion = Number(sum.completion_tokens) || 0;
  const cached = Number(sum.cached_tokens) || 0;
  const unknown = Number(sum.unknown_cost_requests) || 0;
  const cost = sum.cost === null || sum.cost === undefined
    ? (unknown ? "cost unknown" : money(0))
    : `${money(sum.cost)}${unknown ? ` plus ${count(unknown)} request${unknown === 1 ? "" : "s"} of unknown cost` : ""}`;
  return h("p", { class: "usage-totals" },
    `Total: ${count(prompt + completion)} tokens `,
    `(${count(prompt)} prompt${cached ? `, ${count(cached)} of them cached` : ""}, ${count(completion)} completion), ${cost}.`);
}

function modelTable(perModel) {
  if (!perModel.length) return h("p", { class: "muted", text: "No usage in this period." });
  return h("div", { class: "table-wrap", tabIndex: 0, attrs: { role: "region", "aria-label": "Usage per model" } },
    h("table", { class: "data-table" },
      h("thead", {}, h("tr", {}, ["Model", "Requests", "Prompt tokens", "Completion tokens", "Cost"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, perModel.map((m) => h("tr", {},
        h("th", { scope: "row", text: m.provider && !String(m.model).startsWith(`${m.provider}/`) ? `${m.provider}/${m.model}` : m.model }),
        h("td", { text: m.requests != null ? count(m.requests) : "–" }),
        h("td", { text: count(m.prompt_tokens) }),
        h("td", { text: count(m.completion_tokens) }),
        h("td", { class: m.cost === null ? "unknown-cost" : null, text: costText(m.cost, m.unknown_cost_requests) }))))));
}

// ---- plan and limits ----

function limitsPanel(plan, limits) {
  const rows = Object.keys(LIMIT_NAMES).filter((kind) => limits[kind]).map((kind) => limitRow(kind, limits[kind]));
  const anySet = Object.values(limits).some((l) => l && l.limit !== null && l.limit !== undefined);
  return h("section", { class: "card limits", attrs: { "aria-labelledby": "usage-limits-title" } },
    h("h2", { id: "usage-limits-title", text: "Limits" }),
    h("p", { class: "plan-line" },
      plan ? ["Plan: ", h("strong", { text: plan.name })] : "No plan",
      " · ", h("a", { href: "/plan", dataset: { route: "" }, text: "See plans" })),
    anySet ? null : h("p", { class: "muted", text: "No limits apply to your account." }),
    h("ul", { class: "limit-list" }, rows));
}

function limitValue(kind, value) {
  return kind === "cost_per_month" ? money(value) : count(value);
}

function limitRow(kind, info) {
  const name = LIMIT_NAMES[kind];
  const used = Number(info.used) || 0;
  if (info.limit === null || info.limit === undefined) {
    return h("li", { class: "limit", dataset: { kind } },
      h("div", { class: "limit-head" }, h("span", { class: "limit-name", text: name }),
        h("span", { class: "limit-figures", text: `${limitValue(kind, used)} used · no limit` })));
  }
  const limit = Number(info.limit) || 0;
  const remaining = info.remaining ?? Math.max(0, limit - used);
  const share = limit > 0 ? Math.min(1, used / limit) : 1;
  const details = [`${limitValue(kind, remaining)} left`];
  if (info.resets_at) details.push(`resets ${whenText(info.resets_at)}`);
  if (info.source) details.push(SOURCE_TEXT[info.source] || info.source);
  const unknown = Number(info.unknown_cost_requests) || 0;
  const fill = h("span", { class: "limit-fill" });
  fill.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM: allowed by the style-src 'self' policy
  return h("li", { class: `limit${share >= 1 ? " limit-reached" : ""}`, dataset: { kind } },
    h("div", { class: "limit-head" }, h("span", { class: "limit-name", text: name }),
      h("span", { class: "limit-figures", text: `${limitValue(kind, used)} / ${limitValue(kind, limit)}` })),
    h("div", {
      class: "limit-bar", attrs: {
        role: "meter", "aria-label": name, "aria-valuemin": "0", "aria-valuemax": String(limit),
        "aria-valuenow": String(Math.min(used, limit)), "aria-valuetext": `${limitValue(kind, used)} of ${limitValue(kind, limit)} used`,
      },
    }, fill),
    h("p", { class: "limit-details", text: details.join(" · ") }),
    unknown ? h("p", { class: "hint", text: `${count(unknown)} request${unknown === 1 ? "" : "s"} of unknown price this month ${unknown === 1 ? "is" : "are"} not counted.` }) : null);
}
