"""The geometry of the usage page's chart: tokens per day as stacked bars (prompt, then
completion) and, when any day cost something, the day's cost as points on a scale of its own.

The template (``bestchat_admin/usage_chart.svg.html``) draws what :func:`build` returns as
inline SVG: no script runs, so the console's Content-Security-Policy holds. Day labels are
thinned to keep them from overlapping; axis maxima are rounded up to 1, 2 or 5 times a power
of ten, and with every cost at zero there is no cost axis at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from bestchat.services.usage_report import UsageRow

WIDTH = 760
HEIGHT = 260
TOP = 16
BOTTOM = 30
LEFT = 64
RIGHT = 72
# The room one "MM-DD" label needs on the day axis, in SVG units.
LABEL_WIDTH = 46


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
    cost_points: str = ""
    has_cost: bool = False
    max_tokens: int = 0


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


def label_stride(days: int, plot_width: float) -> int:
    """Label every n-th day so that labels never overlap."""
    if days <= 0:
        return 1
    return max(1, math.ceil(LABEL_WIDTH / (plot_width / days)))


def build(per_day: list[UsageRow]) -> Chart:
    has_cost = any(row.cost > 0 for row in per_day)
    left, right = LEFT, WIDTH - (RIGHT if has_cost else 16)
    top, bottom = TOP, HEIGHT - BOTTOM
    plot_w, plot_h = right - left, bottom - top
    max_tokens = nice_ceiling(max((row.total_tokens for row in per_day), default=0))
    max_cost = nice_ceiling(float(max((row.cost for row in per_day), default=0))) if has_cost else 0
    count = max(1, len(per_day))
    step = plot_w / count
    bar_w = max(1.0, step * 0.7)

    def y_tokens(value: float) -> float:
        return bottom - value / max_tokens * plot_h

    bars, points = [], []
    for i, row in enumerate(per_day):
        x = left + i * step + (step - bar_w) / 2
        prompt_top = y_tokens(row.prompt_tokens)
        total_top = y_tokens(row.total_tokens)
        cost_y = bottom - float(row.cost) / max_cost * plot_h if has_cost else None
        center = left + i * step + step / 2
        tip = (f"{row.key}: {row.prompt_tokens:,} prompt + {row.completion_tokens:,} completion tokens"
               + (f", {money(row.cost)}" if has_cost else "") + f", {row.answers:,} answers")
        bars.append(Bar(label=row.key, tip=tip, x=round(x, 2), width=round(bar_w, 2),
                        prompt_y=round(prompt_top, 2), prompt_height=round(bottom - prompt_top, 2),
                        completion_y=round(total_top, 2), completion_height=round(prompt_top - total_top, 2),
                        cost_y=None if cost_y is None else round(cost_y, 2), center=round(center, 2)))
        if cost_y is not None:
            points.append(f"{center:.2f},{cost_y:.2f}")

    stride = label_stride(len(per_day), plot_w)
    # Labelled days count back from the last one, so the most recent day always has its label.
    last = len(per_day) - 1
    day_labels = [(bar.center, bar.label[5:]) for i, bar in enumerate(bars) if (last - i) % stride == 0]
    token_ticks = [(round(y_tokens(max_tokens * f), 2), tokens_text(max_tokens * f)) for f in (0, 0.5, 1)]
    cost_ticks = ([(round(bottom - f * plot_h, 2), money(max_cost * f)) for f in (0, 0.5, 1)]
                  if has_cost else [])
    return Chart(width=WIDTH, height=HEIGHT, plot_left=left, plot_right=right, plot_top=top,
                 plot_bottom=bottom, bars=bars, token_ticks=token_ticks, cost_ticks=cost_ticks,
                 day_labels=day_labels, cost_points=" ".join(points), has_cost=has_cost,
                 max_tokens=int(max_tokens))
