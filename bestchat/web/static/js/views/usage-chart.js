// A plain SVG chart of tokens per day (stacked prompt/completion bars) with the day's known cost
// as a line on its own scale. It is drawn at the width it is shown at (and again when that
// changes), so text stays 11 px and day labels are thinned to what fits: never overlapping,
// from 7 to 366 days, on a phone or a wide screen. Without any known cost there is no cost
// axis; days with requests of unknown price are marked under their bar and say so in their
// tooltip. Each bar has a <title> tooltip; a table of the same numbers sits in a <details>
// below for screen readers and exact values.

import { h } from "../dom.js";
import { costText } from "../format.js";
import { costTicks, labelStride, labelledDays, niceTicks, tokensTick } from "./chart-scale.js";

const NS = "http://www.w3.org/2000/svg";
const HEIGHT = 240;
const TOP = 14;
const BOTTOM = 30;
const FALLBACK_WIDTH = 720; // before the chart is on screen and has a width of its own
const LABEL_GAP = 12; // pixels kept free between two day labels
const FONT_PX = 11; // .chart .tick in app.css

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  for (const child of children) el.append(child);
  return el;
}

let measurer = null;
/** The pixel width of `text` in the chart's tick font. */
function textWidth(text) {
  if (!measurer) measurer = document.createElement("canvas").getContext("2d");
  measurer.font = `${FONT_PX}px ${getComputedStyle(document.body).fontFamily}`;
  return measurer.measureText(text).width;
}

const tokensOf = (d) => (Number(d.prompt_tokens) || 0) + (Number(d.completion_tokens) || 0);
const hasUnknownCost = (d) => (Number(d.unknown_cost_requests) || 0) > 0 || (d.cost === null && (Number(d.requests) || 0) > 0);

/** The chart for `perDay` rows ({date, prompt_tokens, completion_tokens, cost (null: unknown),
 * requests, unknown_cost_requests}), with its legend and the table of numbers. */
export function usageChart(perDay) {
  const holder = h("div", { class: "chart-holder" });
  let drawnWidth = 0;
  const draw = () => {
    const width = Math.floor(holder.clientWidth) || FALLBACK_WIDTH;
    if (width === drawnWidth) return;
    drawnWidth = width;
    holder.replaceChildren(drawChart(perDay, width));
  };
  draw();
  if (window.ResizeObserver) new ResizeObserver(draw).observe(holder);
  const unknownDays = perDay.filter(hasUnknownCost).length;
  const knownCost = perDay.some((d) => Number(d.cost) > 0);
  const legend = h("p", { class: "legend" },
    h("span", { class: "swatch prompt", attrs: { "aria-hidden": "true" } }), " Prompt tokens ",
    h("span", { class: "swatch completion", attrs: { "aria-hidden": "true" } }), " Completion tokens ",
    knownCost ? [h("span", { class: "swatch cost", attrs: { "aria-hidden": "true" } }), " Cost "] : null,
    unknownDays ? [h("span", { class: "swatch unknown", attrs: { "aria-hidden": "true" } }), " Cost unknown"] : null);
  const table = h("details", {}, h("summary", { text: "Show the numbers" }),
    h("div", { class: "table-wrap", tabIndex: 0, attrs: { role: "region", "aria-label": "Usage per day" } },
      h("table", { class: "data-table" },
        h("thead", {}, h("tr", {}, ["Day", "Prompt tokens", "Completion tokens", "Cost"].map((t) => h("th", { scope: "col", text: t })))),
        h("tbody", {}, perDay.map((d) => h("tr", {},
          h("th", { scope: "row", text: d.date }), h("td", { text: Number(d.prompt_tokens || 0).toLocaleString() }),
          h("td", { text: Number(d.completion_tokens || 0).toLocaleString() }),
          h("td", { text: costText(d.cost, d.unknown_cost_requests) })))))));
  return h("div", { class: "chart-wrap" }, holder, legend, table);
}

function drawChart(perDay, width) {
  const maxTokens = Math.max(0, ...perDay.map(tokensOf));
  const maxCost = Math.max(0, ...perDay.map((d) => Number(d.cost) || 0));
  const hasCost = maxCost > 0; // no known cost: no cost axis rather than invented $ ticks
  const plotH = HEIGHT - TOP - BOTTOM;
  const tickCount = plotH >= 150 ? 4 : 3;
  const tokenTicks = niceTicks(maxTokens, { count: tickCount, integer: true });
  const tokenTexts = tokenTicks.map(tokensTick);
  const costValues = hasCost ? niceTicks(maxCost, { count: tickCount }) : [];
  const costTexts = costTicks(costValues);
  const dayText = (d) => d.date.slice(5);
  const labelWidth = Math.max(...perDay.map((d) => textWidth(dayText(d))), 0) + LABEL_GAP;

  const left = Math.ceil(Math.max(...tokenTexts.map(textWidth))) + 12;
  const right = hasCost ? Math.ceil(Math.max(...costTexts.map(textWidth))) + 12 : Math.ceil(labelWidth / 2);
  const plotW = Math.max(40, width - left - right);
  const bottom = TOP + plotH;
  const step = plotW / Math.max(1, perDay.length);
  const barW = Math.max(1, step * 0.7);
  const tokenTop = tokenTicks[tokenTicks.length - 1];
  const y = (tokens) => bottom - (tokens / tokenTop) * plotH;
  const yCost = (cost) => bottom - (cost / costValues[costValues.length - 1]) * plotH;
  const center = (i) => left + i * step + step / 2;

  const unknownDays = perDay.filter(hasUnknownCost).length;
  const costNote = hasCost ? "" : unknownDays ? " No known cost." : " No cost.";
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, class: "chart", role: "img",
    "aria-labelledby": "chart-title chart-desc",
  },
  svg("title", { id: "chart-title" }, "Tokens and cost per day"),
  svg("desc", { id: "chart-desc" }, `${perDay.length} days; the most tokens in a day: ${maxTokens.toLocaleString()}.`
    + costNote + (unknownDays ? ` ${unknownDays} days with requests of unknown cost.` : "")));

  tokenTicks.forEach((value, i) => {
    chart.append(svg("line", { x1: left, x2: left + plotW, y1: y(value), y2: y(value), class: i ? "grid" : "axis" }));
    chart.append(svg("text", { x: left - 6, y: y(value) + 4, class: "tick tokens-tick", "text-anchor": "end" }, tokenTexts[i]));
  });
  costValues.forEach((value, i) => {
    chart.append(svg("text", { x: left + plotW + 6, y: yCost(value) + 4, class: "tick cost" }, costTexts[i]));
  });

  const segments = [];
  let segment = [];
  perDay.forEach((day, i) => {
    const x = left + i * step + (step - barW) / 2;
    const promptTop = y(Number(day.prompt_tokens) || 0);
    const totalTop = y(tokensOf(day));
    const unknown = hasUnknownCost(day);
    const tip = `${day.date}: ${Number(day.prompt_tokens || 0).toLocaleString()} prompt + `
      + `${Number(day.completion_tokens || 0).toLocaleString()} completion tokens, cost ${costText(day.cost, day.unknown_cost_requests)}`;
    chart.append(svg("g", { class: "bar" }, svg("title", {}, tip),
      svg("rect", { x, y: promptTop, width: barW, height: bottom - promptTop, class: "prompt" }),
      svg("rect", { x, y: totalTop, width: barW, height: promptTop - totalTop, class: "completion" }),
      unknown ? svg("rect", { x, y: bottom + 2, width: barW, height: 4, class: "unknown-mark" }) : ""));
    if (hasCost && day.cost !== null && day.cost !== undefined) {
      segment.push(`${center(i).toFixed(1)},${yCost(Number(day.cost) || 0).toFixed(1)}`);
    } else if (segment.length) {
      segments.push(segment);
      segment = [];
    }
  });
  if (segment.length) segments.push(segment);
  for (const points of segments) {
    // A thinner line where bars are only a few pixels wide, so it does not hide them.
    if (points.length > 1) chart.append(svg("polyline", { points: points.join(" "), class: step < 4 ? "cost-line dense" : "cost-line" }));
    else {
      const [cx, cy] = points[0].split(",");
      chart.append(svg("circle", { cx, cy, r: 2.5, class: "cost-point" }));
    }
  }

  const stride = labelStride(perDay.length, plotW, labelWidth);
  for (const i of labelledDays(perDay.length, stride)) {
    chart.append(svg("text", { x: center(i), y: HEIGHT - 8, class: "tick day-label", "text-anchor": "middle" }, dayText(perDay[i])));
  }
  return chart;
}
