"""The console's usage chart (admin/usage_chart.py): day labels that never overlap for 1 to 366
days, round and distinct ticks on both axes, no cost axis without a known cost, and days of
unknown cost marked rather than drawn as $0."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from bestchat.admin import usage_chart
from bestchat.services.usage_report import UsageRow


def Row(key: str, prompt: int, completion: int, cost: Decimal | None, answers: int,
        unpriced: int = 0) -> UsageRow:
    """A day as the report gives it: ``cost`` None stands for a day whose requests all had an
    unknown price (the report's known cost is then 0 with ``unpriced`` requests)."""
    return UsageRow(key, prompt, completion, cost or Decimal(0), answers, unpriced)


def days(count: int, **figures) -> list[UsageRow]:
    first = date(2026, 1, 1)
    return [UsageRow((first + timedelta(days=i)).isoformat(), **figures) for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 7, 30, 31, 90, 180, 365, 366])
def test_day_labels_never_overlap_and_the_last_day_is_labelled(count):
    chart = usage_chart.build(days(count, prompt_tokens=10))
    xs = [x for x, _ in chart.day_labels]
    assert xs and xs[-1] == chart.bars[-1].center
    assert all(b - a >= usage_chart.LABEL_WIDTH for a, b in zip(xs, xs[1:])), count
    # every label stays inside the drawing
    assert xs[0] - usage_chart.LABEL_WIDTH / 2 >= 0
    assert xs[-1] + usage_chart.LABEL_WIDTH / 2 <= chart.width
    # labelled days are a fixed calendar stride apart
    positions = [chart.bars.index(next(b for b in chart.bars if b.center == x)) for x in xs]
    strides = {b - a for a, b in zip(positions, positions[1:])}
    assert len(strides) <= 1 and strides <= set(usage_chart.STRIDES)


def test_a_week_labels_every_day_and_a_year_far_fewer():
    assert len(usage_chart.build(days(7)).day_labels) == 7
    assert 4 <= len(usage_chart.build(days(366)).day_labels) <= 16


def tick_texts(ticks) -> list[str]:
    return [text for _, text in ticks]


@pytest.mark.parametrize("most, expected", [
    (0, ["0", "1"]), (1, ["0", "1"]), (3, ["0", "1", "2", "3"]), (7, ["0", "2", "4", "6", "8"]),
    (2950, ["0", "1k", "2k", "3k"]), (1_234_567, ["0", "500k", "1M", "1.5M"]),
])
def test_token_ticks_are_whole_round_and_even(most, expected):
    chart = usage_chart.build([UsageRow("2026-01-01", prompt_tokens=most)])
    assert tick_texts(chart.token_ticks) == expected
    ys = [y for y, _ in chart.token_ticks]
    gaps = {round(a - b, 1) for a, b in zip(ys, ys[1:])}
    assert len(gaps) == 1  # evenly spaced, from the bottom of the plot up to its top
    assert ys[0] == chart.plot_bottom and ys[-1] == chart.plot_top


def test_no_cost_axis_without_a_known_cost():
    for rows in (days(30, prompt_tokens=100),
                 [Row(r.key, 100, 5, None, 1, 1) for r in days(30)]):
        chart = usage_chart.build(rows)
        assert not chart.has_cost and chart.cost_ticks == [] and chart.cost_lines == []
        assert all(bar.cost_y is None for bar in chart.bars)


@pytest.mark.parametrize("most, expected", [
    (Decimal("0.05"), ["$0", "$0.02", "$0.04", "$0.06"]),
    (Decimal("0.009"), ["$0", "$0.005", "$0.010"]),
    (Decimal("0.0003"), ["$0", "$0.0001", "$0.0002", "$0.0003"]),
    (Decimal("1234"), ["$0", "$500.00", "$1,000.00", "$1,500.00"]),
])
def test_cost_ticks_are_round_and_never_read_the_same(most, expected):
    chart = usage_chart.build([UsageRow("2026-01-01", prompt_tokens=5, cost=most),
                               UsageRow("2026-01-02", prompt_tokens=5)])
    assert tick_texts(chart.cost_ticks) == expected


def test_unknown_cost_is_marked_and_breaks_the_cost_line():
    rows = [Row("2026-01-01", 10, 5, Decimal("0.02"), 1),
            Row("2026-01-02", 10, 5, Decimal("0.03"), 1),
            Row("2026-01-03", 10, 5, None, 1, 1),
            Row("2026-01-04", 10, 5, Decimal("0.01"), 2, 1)]
    chart = usage_chart.build(rows)
    assert chart.has_cost and chart.unknown_days == 2
    assert [bar.unknown_cost for bar in chart.bars] == [False, False, True, True]
    assert chart.bars[2].cost_y is None and "cost unknown" in chart.bars[2].tip
    assert "$0.01 + unknown" in chart.bars[3].tip
    assert [len(line.split()) for line in chart.cost_lines] == [2, 1]  # no line across the unknown day
    assert "$0" not in chart.bars[2].tip


def test_template_marks_unknown_days(app):
    from flask import render_template

    rows = [Row("2026-01-01", 10, 5, Decimal("0.02"), 1), Row("2026-01-02", 10, 5, None, 1, 1)]
    with app.test_request_context():
        svg = render_template("bestchat_admin/usage_chart.svg.html", chart=usage_chart.build(rows))
    assert svg.count('class="unknown-cost"') == 1
    assert svg.count('class="cost-point"') == 1 and "None" not in svg
    assert "1 day with requests of unknown cost" in re.sub(r"\s+", " ", svg)


def test_a_year_of_cost_is_a_line_without_dots():
    rows = days(366, prompt_tokens=10, cost=Decimal("0.01"))
    assert not usage_chart.build(rows).cost_dots
    assert usage_chart.build(rows[:30]).cost_dots
