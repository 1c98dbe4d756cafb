// The usage page: tokens and cost per day for the last 30 days as an SVG chart, and a table
// per model, from GET /api/v1/usage?from=&to= (per-day and per-model totals, UTC days).

import { api, friendlyError } from "../api.js";
import { h } from "../dom.js";
import { money } from "../format.js";
import { usageChart } from "./usage-chart.js";

const DAYS = 30;

export async function usageView(container) {
  document.title = "Usage – BestChat";
  const body = h("div", { class: "usage-body" }, h("p", { class: "muted", text: "Loading…" }));
  container.replaceChildren(h("div", { class: "page" }, h("h1", { text: "Usage" }),
    h("p", { class: "muted", text: `Tokens and cost over the last ${DAYS} days.` }), body));
  const days = lastDays(DAYS);
  try {
    const data = await api("GET", `/usage?from=${days[0]}&to=${days[days.length - 1]}`);
    const { perDay, perModel } = normalize(data, days);
    body.replaceChildren(
      h("section", { class: "card", attrs: { "aria-labelledby": "usage-chart-title" } },
        h("h2", { id: "usage-chart-title", text: "Per day" }), usageChart(perDay), totals(perDay)),
      h("section", { class: "card", attrs: { "aria-labelledby": "usage-models-title" } },
        h("h2", { id: "usage-models-title", text: "Per model" }), modelTable(perModel)));
  } catch (error) {
    body.replaceChildren(h("p", { class: "notice", text: friendlyError(error) }));
  }
}

/** The last `count` days as YYYY-MM-DD (UTC), oldest first. */
function lastDays(count) {
  const today = new Date();
  return Array.from({ length: count }, (_, i) => {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (count - 1 - i)));
    return d.toISOString().slice(0, 10);
  });
}

/** Per-day rows for every day shown (the server sends zeros for empty days) and per-model rows. */
function normalize(data, days) {
  const byDay = new Map(data.days.map((d) => [d.date, d]));
  const empty = (date) => ({ date, prompt_tokens: 0, completion_tokens: 0, cost: 0 });
  return { perDay: days.map((d) => byDay.get(d) || empty(d)), perModel: data.models };
}

function add(total, row) {
  total.prompt_tokens += Number(row.prompt_tokens) || 0;
  total.completion_tokens += Number(row.completion_tokens) || 0;
  total.cost += Number(row.cost) || 0;
}

function totals(perDay) {
  const sum = perDay.reduce((t, d) => { add(t, d); return t; }, { prompt_tokens: 0, completion_tokens: 0, cost: 0 });
  return h("p", { class: "usage-totals" },
    `Total: ${(sum.prompt_tokens + sum.completion_tokens).toLocaleString()} tokens `,
    `(${sum.prompt_tokens.toLocaleString()} prompt, ${sum.completion_tokens.toLocaleString()} completion), ${money(sum.cost)}.`);
}

function modelTable(perModel) {
  if (!perModel.length) return h("p", { class: "muted", text: "No usage in this period." });
  const sorted = [...perModel].sort((a, b) => (b.cost - a.cost) || ((b.prompt_tokens + b.completion_tokens) - (a.prompt_tokens + a.completion_tokens)));
  return h("div", { class: "table-wrap", tabIndex: 0, attrs: { role: "region", "aria-label": "Usage per model" } },
    h("table", { class: "data-table" },
      h("thead", {}, h("tr", {}, ["Model", "Requests", "Prompt tokens", "Completion tokens", "Cost"].map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, sorted.map((m) => h("tr", {},
        h("th", { scope: "row", text: m.provider && !String(m.model).startsWith(`${m.provider}/`) ? `${m.provider}/${m.model}` : m.model }),
        h("td", { text: m.requests != null ? Number(m.requests).toLocaleString() : "–" }),
        h("td", { text: Number(m.prompt_tokens || 0).toLocaleString() }),
        h("td", { text: Number(m.completion_tokens || 0).toLocaleString() }),
        h("td", { text: money(m.cost) }))))));
}
