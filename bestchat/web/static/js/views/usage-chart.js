// A plain SVG chart of tokens per day (stacked prompt/completion bars) with the day's cost as
// a line on its own scale. Each bar has a <title> tooltip; a table of the same numbers sits in
// a <details> below for screen readers and exact values.

import { h } from "../dom.js";
import { money } from "../format.js";

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 240;
const PAD = { top: 16, right: 56, bottom: 28, left: 56 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  for (const child of children) el.append(child);
  return el;
}

export function usageChart(perDay) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const maxTokens = Math.max(1, ...perDay.map((d) => d.prompt_tokens + d.completion_tokens));
  const maxCost = Math.max(0.0001, ...perDay.map((d) => d.cost));
  const step = plotW / perDay.length;
  const barW = Math.max(2, step * 0.7);
  const y = (tokens) => PAD.top + plotH - (tokens / maxTokens) * plotH;
  const yCost = (cost) => PAD.top + plotH - (cost / maxCost) * plotH;

  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-labelledby": "chart-title chart-desc" },
    svg("title", { id: "chart-title" }, "Tokens and cost per day"),
    svg("desc", { id: "chart-desc" }, `Last ${perDay.length} days; the most tokens in a day: ${maxTokens.toLocaleString()}.`));
  chart.append(svg("line", { x1: PAD.left, x2: PAD.left + plotW, y1: PAD.top + plotH, y2: PAD.top + plotH, class: "axis" }));
  chart.append(svg("text", { x: PAD.left - 6, y: PAD.top + 4, class: "tick", "text-anchor": "end" }, maxTokens.toLocaleString()));
  chart.append(svg("text", { x: PAD.left - 6, y: PAD.top + plotH, class: "tick", "text-anchor": "end" }, "0"));
  chart.append(svg("text", { x: PAD.left + plotW + 6, y: PAD.top + 4, class: "tick cost" }, money(maxCost)));

  const points = [];
  perDay.forEach((day, i) => {
    const x = PAD.left + i * step + (step - barW) / 2;
    const promptTop = y(day.prompt_tokens);
    const totalTop = y(day.prompt_tokens + day.completion_tokens);
    const tip = `${day.date}: ${day.prompt_tokens.toLocaleString()} prompt + ${day.completion_tokens.toLocaleString()} completion tokens, ${money(day.cost)}`;
    chart.append(svg("g", { class: "bar" }, svg("title", {}, tip),
      svg("rect", { x, y: promptTop, width: barW, height: PAD.top + plotH - promptTop, class: "prompt" }),
      svg("rect", { x, y: totalTop, width: barW, height: promptTop - totalTop, class: "completion" })));
    points.push(`${PAD.left + i * step + step / 2},${yCost(day.cost)}`);
    if (i % 7 === 0 || i === perDay.length - 1) {
      chart.append(svg("text", { x: PAD.left + i * step + step / 2, y: HEIGHT - 8, class: "tick", "text-anchor": "middle" }, day.date.slice(5)));
    }
  });
  chart.append(svg("polyline", { points: points.join(" "), class: "cost-line" }));

  const legend = h("p", { class: "legend" },
    h("span", { class: "swatch prompt", attrs: { "aria-hidden": "true" } }), " Prompt tokens ",
    h("span", { class: "swatch completion", attrs: { "aria-hidden": "true" } }), " Completion tokens ",
    h("span", { class: "swatch cost", attrs: { "aria-hidden": "true" } }), " Cost");
  const table = h("details", {}, h("summary", { text: "Show the numbers" }),
    h("div", { class: "table-wrap", tabIndex: 0, attrs: { role: "region", "aria-label": "Usage per day" } },
      h("table", { class: "data-table" },
        h("thead", {}, h("tr", {}, ["Day", "Prompt tokens", "Completion tokens", "Cost"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, perDay.map((d) => h("tr", {},
          h("th", { scope: "row", text: d.date }), h("td", { text: d.prompt_tokens.toLocaleString() }),
          h("td", { text: d.completion_tokens.toLocaleString() }), h("td", { text: money(d.cost) })))))));
  return h("div", { class: "chart-wrap" }, chart, legend, table);
}
