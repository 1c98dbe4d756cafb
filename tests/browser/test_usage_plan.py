"""The usage page (unknown cost, limits, the chart's axes and day labels at any width), the plan
page (billing off and on) and a limit's refusal in the chat.

The plan/limits part of ``GET /api/v1/usage``, ``GET /api/v1/billing`` and the checkout/portal
calls are answered by the test (Playwright ``page.route``) in the shapes the API documents, so
these tests check the UI alone; the real answers are covered by the API tests."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import pytest

pytestmark = pytest.mark.browser


def days_back(count: int) -> list[str]:
    today = datetime.now(timezone.utc).date()
    return [(today - timedelta(days=count - 1 - i)).isoformat() for i in range(count)]


def day_row(day: str, prompt: int = 0, completion: int = 0, cost=0.0, requests: int = 0, unknown: int = 0) -> dict:
    return {"date": day, "prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": 0,
            "cost": cost, "requests": requests, "unknown_cost_requests": unknown}


def usage_body(days: list[dict], models: list[dict] | None = None, **extra) -> dict:
    keys = ("prompt_tokens", "completion_tokens", "cached_tokens", "requests", "unknown_cost_requests")
    totals = {k: sum(d[k] for d in days) for k in keys}
    known = [d["cost"] for d in days if d["cost"] is not None]
    totals["cost"] = None if totals["requests"] and not known else sum(known)
    return {"from": days[0]["date"], "to": days[-1]["date"], "days": days, "models": models or [],
            "totals": totals, **extra}


def answer_usage(page, body: dict) -> None:
    page.route("**/api/v1/usage?*", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(body)))


def midnight_utc(days_ahead: int = 1) -> str:
    day = datetime.now(timezone.utc).date() + timedelta(days=days_ahead)
    return datetime.combine(day, time.min, tzinfo=timezone.utc).isoformat()


LIMITS = {
    "requests_per_minute": {"limit": None, "used": 0, "remaining": None, "resets_at": None, "source": None},
    "tokens_per_day": {"limit": 10000, "used": 2500, "remaining": 7500, "resets_at": midnight_utc(), "source": "plan"},
    "cost_per_month": {"limit": 5.0, "used": 5.0, "remaining": 0.0, "resets_at": midnight_utc(20),
                       "source": "group", "unknown_cost_requests": 2},
    "concurrent_generations": {"limit": 2, "used": 0, "remaining": 2, "resets_at": None, "source": "user"},
}


def test_usage_page_shows_unknown_cost_and_limits(page, signed_in):
    days = [day_row(d) for d in days_back(30)]
    days[-1] = day_row(days[-1]["date"], 300, 200, None, requests=2, unknown=2)
    days[-2] = day_row(days[-2]["date"], 100, 50, 0.25, requests=2, unknown=1)
    models = [
        {"provider": "openai", "model": "gpt-4o", "prompt_tokens": 90, "completion_tokens": 40, "cached_tokens": 0,
         "cost": 0.25, "requests": 1, "unknown_cost_requests": 0},
        {"provider": "local", "model": "llama", "prompt_tokens": 310, "completion_tokens": 210, "cached_tokens": 0,
         "cost": None, "requests": 3, "unknown_cost_requests": 3},
    ]
    plan = {"id": "p1", "name": "Team", "source": "admin", "status": "active"}
    answer_usage(page, usage_body(days, models, plan=plan, limits=LIMITS))
    page.goto("/usage")

    assert page.get_by_role("row", name="local/llama").get_by_role("cell").last.inner_text() == "unknown"
    assert page.get_by_role("row", name="openai/gpt-4o").get_by_role("cell").last.inner_text() == "$0.25"
    totals = page.locator(".usage-totals").inner_text()
    assert "$0.25 plus 3 requests of unknown cost" in totals
    assert page.locator(".legend", has_text="Cost unknown").is_visible()  # the chart's legend
    assert page.locator(".chart .unknown-mark").count() == 2

    limits = page.locator("section.limits")
    assert limits.get_by_role("heading", name="Limits").is_visible()
    assert limits.get_by_text("Team").is_visible()
    tokens = limits.locator("[data-kind=tokens_per_day]")
    assert "2,500 / 10,000" in tokens.inner_text()
    assert "7,500 left" in tokens.inner_text() and "resets" in tokens.inner_text()
    assert "from your plan" in tokens.inner_text()
    assert tokens.get_by_role("meter", name="Tokens per day").get_attribute("aria-valuenow") == "2500"
    cost = limits.locator("[data-kind=cost_per_month]")
    assert "$5.00 / $5.00" in cost.inner_text() and "from your group" in cost.inner_text()
    assert "2 requests of unknown price" in cost.inner_text()
    assert "no limit" in limits.locator("[data-kind=requests_per_minute]").inner_text()
    assert "set for your account" in limits.locator("[data-kind=concurrent_generations]").inner_text()

    limits.get_by_role("link", name="See plans").click()
    page.get_by_role("heading", name="Plan", exact=True).wait_for()
    assert page.url.endswith("/plan")


def test_usage_page_without_limits_shows_no_limits_panel(page, signed_in):
    answer_usage(page, usage_body([day_row(d) for d in days_back(30)]))
    page.goto("/usage")
    page.locator(".usage-totals").wait_for()
    assert page.locator("section.limits").count() == 0
    assert "$0.00" in page.locator(".usage-totals").inner_text()  # nothing used: truly nothing spent


def label_boxes(page) -> list[dict]:
    return page.eval_on_selector_all(".chart .day-label", """labels => labels.map(l => {
        const b = l.getBoundingClientRect(); return { left: b.left, right: b.right, text: l.textContent }; })""")


@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("count", [30, 366])
def test_chart_day_labels_never_overlap(page, signed_in, width, count):
    page.set_viewport_size({"width": width, "height": 800})
    days = [day_row(d, 1000 + 37 * i, 500 + 11 * i, 0.01 * (i % 5), requests=1)
            for i, d in enumerate(days_back(count))]
    answer_usage(page, usage_body(days))
    page.goto(f"/usage?days={count}")
    page.locator(".chart .day-label").first.wait_for()
    assert page.locator(".chart g.bar").count() == count
    boxes = label_boxes(page)
    assert len(boxes) >= 2
    assert boxes[-1]["text"] == days[-1]["date"][5:]  # today always labelled
    for before, after in zip(boxes, boxes[1:]):
        assert before["right"] < after["left"], (before, after)
    chart = page.locator(".chart").bounding_box()
    assert chart["x"] <= boxes[0]["left"] and boxes[-1]["right"] <= chart["x"] + chart["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll


def test_chart_has_no_cost_axis_without_a_known_cost(page, signed_in):
    days = [day_row(d, 700, 300, 0.0, requests=1) for d in days_back(30)]
    answer_usage(page, usage_body(days))
    page.goto("/usage")
    page.locator(".chart .day-label").first.wait_for()
    assert page.locator(".chart .tick.cost").count() == 0
    assert page.locator(".chart .cost-line").count() == 0
    ticks = page.locator(".chart .tokens-tick").all_text_contents()
    assert ticks[0] == "0" and len(set(ticks)) == len(ticks)
    values = [float(t.replace("k", "e3").replace("M", "e6")) for t in ticks]
    steps = {round(b - a, 6) for a, b in zip(values, values[1:])}
    assert len(steps) == 1 and values[-1] >= 1000  # evenly spaced round ticks covering the top

    days = [day_row(d, 700, 300, None, requests=1, unknown=1) for d in days_back(30)]
    answer_usage(page, usage_body(days))
    page.reload()
    page.locator(".chart .day-label").first.wait_for()
    assert page.locator(".chart .tick.cost").count() == 0
    assert page.locator(".legend", has_text="Cost unknown").is_visible()
    assert "cost unknown" in page.locator(".usage-totals").inner_text()
    assert "$" not in page.locator(".usage-totals").inner_text()


def test_chart_cost_ticks_are_round_and_distinct(page, signed_in):
    days = [day_row(d, 700, 300, 0.003 * (i % 4), requests=1) for i, d in enumerate(days_back(30))]
    answer_usage(page, usage_body(days))
    page.goto("/usage")
    page.locator(".chart .day-label").first.wait_for()
    ticks = page.locator(".chart .tick.cost").all_text_contents()
    assert ticks[0] == "$0" and len(set(ticks)) == len(ticks) >= 2, ticks


def answer_billing(page, body: dict, calls: list) -> None:
    def billing(route):
        request = route.request
        if request.method == "GET":
            return route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
        calls.append((request.url.rsplit("/", 1)[-1], request.post_data_json, request.headers.get("x-csrf-token")))
        return route.fulfill(status=200, content_type="application/json",
                             body=json.dumps({"url": f"{page_origin(page)}/usage?from_billing=1"}))

    page.route("**/api/v1/billing**", billing)


def page_origin(page) -> str:
    return page.evaluate("location.origin")


PLANS = [
    {"id": "free", "name": "Free", "description": "To try it out", "price_cents": 0, "purchasable": False,
     "current": True, "limits": {"requests_per_minute": 5, "tokens_per_day": 10000, "cost_per_month": None,
                                 "concurrent_generations": 1}},
    {"id": "pro", "name": "Pro", "description": "For daily work", "price_cents": 1200, "purchasable": True,
     "current": False, "limits": {"requests_per_minute": 60, "tokens_per_day": 500000, "cost_per_month": 20.0,
                                  "concurrent_generations": 3}},
]


def test_plan_page_with_billing_off_says_plans_are_assigned(page, signed_in):
    calls = []
    answer_billing(page, {"enabled": False, "plan": {"id": "free", "name": "Free", "source": "default", "status": None},
                          "subscription": None, "plans": PLANS}, calls)
    page.goto("/settings")
    page.get_by_role("link", name="see your plan").click()
    page.get_by_text("Plans are assigned by your administrator.").wait_for()
    current = page.locator("section.current-plan")
    assert current.get_by_text("Free", exact=True).is_visible()
    assert "Tokens per day: 10,000" in current.inner_text()
    pro = page.locator(".plan-card", has_text="Pro")
    assert "$12.00" in pro.inner_text() and "Cost per month: $20.00" in pro.inner_text()
    assert page.get_by_role("button").filter(has_text="Upgrade").count() == 0
    assert page.get_by_role("button", name="Manage billing").count() == 0
    assert calls == []


def test_plan_page_with_billing_on_goes_to_checkout_and_portal(page, signed_in):
    calls = []
    body = {"enabled": True, "plan": {"id": "free", "name": "Free", "source": "stripe", "status": "active"},
            "subscription": {"status": "active", "current_period_end": midnight_utc(30),
                             "cancel_at_period_end": False, "source": "stripe"},
            "plans": PLANS}
    answer_billing(page, body, calls)
    page.goto("/plan")
    assert page.get_by_text("Plans are assigned by your administrator.").count() == 0
    page.get_by_role("button", name="Upgrade to Pro").click()
    page.wait_for_url("**/usage?from_billing=1")
    assert calls[0][:2] == ("checkout", {"plan_id": "pro"}) and calls[0][2]

    page.goto("/plan")
    page.get_by_role("button", name="Manage billing").click()
    page.wait_for_url("**/usage?from_billing=1")
    assert calls[1][0] == "portal" and calls[1][2]


def test_plan_page_shows_a_refused_checkout(page, signed_in):
    calls = []
    answer_billing(page, {"enabled": True, "plan": None, "subscription": None, "plans": PLANS}, calls)
    page.route("**/api/v1/billing/checkout", lambda route: route.fulfill(
        status=409, content_type="application/json",
        body=json.dumps({"error": {"code": "no_price", "message": "this plan cannot be bought"}})))
    page.goto("/plan")
    page.get_by_role("button", name="Upgrade to Pro").click()
    page.locator(".toast-error", has_text="This plan cannot be bought.").wait_for()
    assert page.url.endswith("/plan")


def test_a_send_refused_by_a_limit_says_which_and_links_to_the_plan(page, signed_in):
    message = ("you have used your 10,000 tokens for today; the limit resets at 00:00 UTC (in 3 h 12 min)")
    page.route("**/api/v1/conversations/*/messages", lambda route: route.fulfill(
        status=429, content_type="application/json", headers={"Retry-After": "11520"},
        body=json.dumps({"error": {"code": "limit_tokens_per_day", "message": message,
                                   "details": {"limit": 10000, "used": 10012, "resets_at": midnight_utc(),
                                               "limit_source": "plan"}}}))
        if route.request.method == "POST" else route.continue_())
    box = page.get_by_label("Message", exact=True)
    box.fill("one more question")
    box.press("Enter")
    note = page.get_by_role("alert").filter(has_text="10,000 tokens for today")
    note.wait_for()
    assert "resets at 00:00 UTC" in note.inner_text()
    assert box.input_value() == "one more question"  # the draft is kept for later
    note.get_by_role("link", name="See your plan and limits").click()
    page.get_by_role("heading", name="Plan", exact=True).wait_for()


def test_chart_scale_ticks_and_label_strides(page, signed_in):
    got = page.evaluate("""async () => {
      const s = await import('/assets/js/views/chart-scale.js');
      return {
        tokens: [0, 1, 3, 7, 2950, 1234567].map((v) => s.niceTicks(v, { integer: true }).map(s.tokensTick)),
        cost: [0.05, 0.009, 0.0003].map((v) => s.costTicks(s.niceTicks(v))),
        strides: [[7, 600, 45], [30, 300, 45], [366, 300, 45], [366, 1100, 45]].map(([d, w, l]) => s.labelStride(d, w, l)),
        labelled: s.labelledDays(10, 3),
      };
    }""")
    assert got["tokens"] == [["0", "1"], ["0", "1"], ["0", "1", "2", "3"], ["0", "2", "4", "6", "8"],
                             ["0", "1k", "2k", "3k"], ["0", "500k", "1M", "1.5M"]]
    assert got["cost"] == [["$0", "$0.02", "$0.04", "$0.06"], ["$0", "$0.005", "$0.010"],
                           ["$0", "$0.0001", "$0.0002", "$0.0003"]]
    assert got["strides"] == [1, 7, 56, 28]
    assert got["labelled"] == [0, 3, 6, 9]
