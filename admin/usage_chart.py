"""The geometry of the usage page's chart: tokens per day as stacked bars (prompt, then
completion) and, when any day has a known cost above zero, the day's cost as points on a scale
of its own.

The template (``bestchat_admin/usage_chart.svg.html``) draws what :func:`build` returns as
inline SVG: no script runs, so the console's Content-Security-Policy holds. The SVG scales with
the page, so spacing in SVG units is spacing on screen: day labels are thinned to every n-th
day (a calendar stride: 1, 2, 3, 7, 14, 28... days) so that they never overlap, for 1 to 366
days. Both axes have evenly spaced round ticks (1, 2 or 5 times a power of ten, whole tokens)
written with the places their step needs, so no two ticks read the same. With no known cost
there is no cost axis at all (no invented $ ticks); a day whose cost is unknown in part or
in whole (a row's cost None, see :mod:`bestchat.models.usage`) is marked under its bar and
says so in its tooltip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from bestchat.services.usage_report import UsageRow

WIDTH = 760
HEIGHT = 260
TOP = 16
BOTTOM = 30
LEFT = 64
RIGHT = 72
# The room one "MM-DD" label needs on the day axis, in SVG units (11 px text and a gap).
LABEL_WIDTH = 46
# Label every n-th day with n from these: steps that read as days, weeks and quarters.
STRIDES = (1, 2, 3, 7, 14, 28, 56, 91, 182, 366)
# Ticks aimed at on each vertical axis.
TICKS = 4
# Narrower days than this (SVG units) get no cost dot: the dots would hide the bars.
MIN_DOT_STEP = 6


@dataclass
class Bar:
    label: str
    tip: str
    x: float
    width: float
    prompt_y: float
    prompt_height: float
    completion_y: float
    completion_height: float
    cost_y: float | None
    center: float
    unknown_cost: bool = False


@dataclass
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: list[Bar]
    token_ticks: list[tuple[float, str]]
    cost_ticks: list[tuple[float, str]]
    day_labels: list[tuple[float, str]]
    # Polyline points of each run of days with a known cost.
    cost_lines: list[str] = field(default_factory=list)
    has_cost: bool = False
    max_tokens: int = 0
    # Days with requests whose price was unknown.
    unknown_days: int = 0
    # Whether each day's cost gets a dot (not when days are too narrow for one).
    cost_dots: bool = True


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power * (1 + 1e-12):
            return step * power
    return 10 * power


def tokens_text(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def money(value: Decimal | float) -> str:
    """Dollars with cents, or four decimals below a cent (``$0.0012``)."""
    value = float(value)
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def nice_ticks(top: float, *, count: int = TICKS, integer: bool = False) -> list[float]:
    """Evenly spaced round ticks from 0 to at least ``top``, about ``count`` of them
    (``[0, 2000, 4000, 6000]``); whole steps when ``integer``. A ``top`` of 0 gives ``[0, 1]``."""
    step = nice_ceiling((top if top > 0 else 1) / max(1, count))
    if integer:
        step = max(1, round(step))
    steps = max(1, math.ceil(top / step - 1e-9))
    places = decimals(step)
    return [round(i * step, places) for i in range(steps + 1)]


def decimals(step: float) -> int:
    """Decimal places that show every multiple of ``step`` exactly (0.005 -> 3, 2000 -> 0)."""
    return 0 if step >= 1 else min(8, math.ceil(-math.log10(step) - 1e-9))


def money_ticks(ticks: list[float]) -> list[str]:
    """Dollar texts for cost ticks, all with the places the step needs (at least cents)."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    places = max(2, decimals(step))
    return ["$0" if value == 0 else f"${value:,.{places}f}" for value in ticks]


def label_stride(days: int, plot_width: float) -> int:
    """Label every n-th day (a calendar stride) so that labels never overlap."""
    if days <= 1:
        return 1
    needed = math.ceil(LABEL_WIDTH / (plot_width / days))
    return next((stride for stride in STRIDES if stride >= needed), needed)


def _known_cost(row: UsageRow) -> Decimal | None:
    """The day's known cost; None when the day's requests all had an unknown price."""
    if row.unpriced and not row.cost:
        return None
    return Decimal(row.cost)


def _unknown_cost(row: UsageRow) -> bool:
    """True when some request of the day had no price (the day's cost leaves it out)."""
    return bool(row.unpriced)


def build(per_day: list[UsageRow]) -> Chart:
    costs = [_known_cost(row) for row in per_day]
    has_cost = any(cost is not None and cost > 0 for cost in costs)
    left, right = LEFT, WIDTH - (RIGHT if has_cost else LABEL_WIDTH // 2)
    top, bottom = TOP, HEIGHT - BOTTOM
    plot_w, plot_h = right - left, bottom - top
    token_values = nice_ticks(max((row.total_tokens for row in per_day), default=0), integer=True)
    max_tokens = token_values[-1]
    cost_values = nice_ticks(float(max(c for c in costs if c is not None))) if has_cost else []
    max_cost = cost_values[-1] if has_cost else 0
    count = max(1, len(per_day))
    step = plot_w / count
    bar_w = max(1.0, step * 0.7)

    def y_tokens(value: float) -> float:
        return bottom - value / max_tokens * plot_h

    bars, points, segments = [], [], []
    for i, (row, cost) in enumerate(zip(per_day, costs)):
        x = left + i * step + (step - bar_w) / 2
        prompt_top = y_tokens(row.prompt_tokens)
        total_top = y_tokens(row.total_tokens)
        cost_y = bottom - float(cost) / max_cost * plot_h if has_cost and cost is not None else None
        center = left + i * step + step / 2
        unknown = _unknown_cost(row)
        cost_text = ("cost unknown" if cost is None else f"{money(cost)} + unknown" if unknown
                     else money(cost) if has_cost else "")
        tip = (f"{row.key}: {row.prompt_tokens:,} prompt + {row.completion_tokens:,} completion tokens"
               + (f", {cost_text}" if cost_text else "") + f", {row.answers:,} answers")
        bars.append(Bar(label=row.key, tip=tip, x=round(x, 2), width=round(bar_w, 2),
                        prompt_y=round(prompt_top, 2), prompt_height=round(bottom - prompt_top, 2),
                        completion_y=round(total_top, 2), completion_height=round(prompt_top - total_top, 2),
                        cost_y=None if cost_y is None else round(cost_y, 2), center=round(center, 2),
                        unknown_cost=unknown))
        if cost_y is not None:
            points.append(f"{center:.2f},{cost_y:.2f}")
        elif points:  # a day without a known cost breaks the line rather than bridging it
            segments.append(" ".join(points))
            points = []
    if points:
        segments.append(" ".join(points))

    stride = label_stride(len(per_day), plot_w)
    # Labelled days count back from the last one, so the most recent day always has its label.
    last = len(per_day) - 1
    day_labels = [(bar.center, bar.label[5:]) for i, bar in enumerate(bars) if (last - i) % stride == 0]
    token_ticks = [(round(y_tokens(value), 2), tokens_text(value)) for value in token_values]
    cost_ticks = [(round(bottom - value / max_cost * plot_h, 2), text)
                  for value, text in zip(cost_values, money_ticks(cost_values))]
    return Chart(width=WIDTH, height=HEIGHT, plot_left=left, plot_right=right, plot_top=top,
                 plot_bottom=bottom, bars=bars, token_ticks=token_ticks, cost_ticks=cost_ticks,
                 day_labels=day_labels, cost_lines=segments, has_cost=has_cost,
                 max_tokens=int(max_tokens), unknown_days=sum(bar.unknown_cost for bar in bars),
                 cost_dots=step >= MIN_DOT_STEP)
