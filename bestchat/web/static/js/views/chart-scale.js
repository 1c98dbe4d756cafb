// Axis arithmetic for the usage chart, kept apart from drawing so it can be checked alone:
// round ("nice") ticks, which day labels fit the width, and tick texts.

/** The smallest 1, 2 or 5 times a power of ten that is at least `value`. */
export function niceStep(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const factor of [1, 2, 5, 10]) {
    if (value <= factor * power * (1 + 1e-9)) return factor * power;
  }
  return 10 * power;
}

/**
 * Ticks from 0 to at least `max` in round steps, about `count` of them: [0, 2000, 4000, 6000].
 * `integer` keeps steps whole (token counts). A `max` of 0 gives [0, 1 step] so a scale still
 * exists; callers that must not invent a value (cost) do not draw an axis then.
 */
export function niceTicks(max, { count = 4, integer = false } = {}) {
  let step = niceStep((max > 0 ? max : 1) / Math.max(1, count));
  if (integer) step = Math.max(1, Math.round(step));
  const steps = Math.max(1, Math.ceil(max / step - 1e-9));
  const digits = decimals(step);
  return Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toFixed(digits)));
}

/** Decimal places that show every multiple of `step` exactly (0.005 -> 3, 2000 -> 0). */
export function decimals(step) {
  if (step >= 1) return 0;
  return Math.min(8, Math.ceil(-Math.log10(step) - 1e-9));
}

/** "950", "1.5k", "12k", "3M": token counts on an axis. */
export function tokensTick(value) {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return String(value);
}

function trim(value) {
  return String(Number(value.toFixed(2)));
}

/** Dollar ticks all with the places the step needs (at least cents): "$0", "$0.005", "$0.010". */
export function costTicks(ticks) {
  const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1;
  const places = Math.max(2, decimals(step));
  return ticks.map((v) => (v === 0 ? "$0" : `$${v.toFixed(places)}`));
}

// Labelling every n-th day: strides that read as calendar steps (days, weeks, ~months).
const STRIDES = [1, 2, 3, 7, 14, 28, 56, 91, 182, 366];

/** Label every n-th of `days` bars spread over `plotWidth` pixels so labels of `labelWidth`
 * pixels (gap included) never touch. */
export function labelStride(days, plotWidth, labelWidth) {
  if (days <= 1) return 1;
  const needed = Math.ceil(labelWidth / (plotWidth / days));
  return STRIDES.find((s) => s >= needed) || needed;
}

/** The indexes of the labelled days: every `stride`-th counting back from the last day, so
 * the most recent day always has its label. */
export function labelledDays(days, stride) {
  const picked = [];
  for (let i = days - 1; i >= 0; i -= stride) picked.unshift(i);
  return picked;
}
