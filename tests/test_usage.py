"""GET /api/v1/usage: per-day and per-model totals of the user's own usage."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bestchat.extensions import db
from bestchat.models import UsageLog
from bestchat.testing.client import assert_error


def log_usage(app, user_id: str, when: datetime, model: str, prompt: int, completion: int,
              cost: str | None, cached: int = 0) -> None:
    """One usage row; ``cost`` None is a request whose price was unknown."""
    with app.app_context():
        db.session.add(UsageLog(user_id=uuid.UUID(user_id), provider="openai", model=model,
                                prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                                cost=None if cost is None else Decimal(cost), created_at=when))
        db.session.commit()


def test_usage_per_day_and_model(client, user, app):
    today = datetime.now(timezone.utc).replace(hour=12)
    log_usage(app, user["id"], today, "gpt-4o-mini", 10, 20, "0.001")
    log_usage(app, user["id"], today, "gpt-4o-mini", 5, 5, "0.0005")
    log_usage(app, user["id"], today - timedelta(days=2), "gpt-4o", 100, 50, "0.02")
    log_usage(app, user["id"], today - timedelta(days=40), "gpt-4o", 1, 1, "9")  # outside the window

    data = client.get("/api/v1/usage").get_json()
    assert len(data["days"]) == 30 and data["days"][-1]["date"] == today.date().isoformat()
    by_day = {d["date"]: d for d in data["days"]}
    assert by_day[today.date().isoformat()]["completion_tokens"] == 25
    assert by_day[today.date().isoformat()]["requests"] == 2
    assert by_day[(today - timedelta(days=2)).date().isoformat()]["prompt_tokens"] == 100
    assert [m["model"] for m in data["models"]] == ["gpt-4o", "gpt-4o-mini"]
    assert abs(data["totals"]["cost"] - 0.0215) < 1e-9 and data["totals"]["requests"] == 3


def test_unknown_cost_is_null_never_zero(client, user, app):
    """A day or model whose every request had an unknown price reports cost null; a mix reports
    the known part and how many requests it leaves out; an empty day costs 0."""
    today = datetime.now(timezone.utc).replace(hour=12)
    yesterday = today - timedelta(days=1)
    log_usage(app, user["id"], today, "local-llm", 100, 10, None, cached=40)
    log_usage(app, user["id"], today, "local-llm", 50, 5, None)
    log_usage(app, user["id"], yesterday, "gpt-4o", 10, 10, "0.25", cached=4)
    log_usage(app, user["id"], yesterday, "local-llm", 1, 1, None)

    data = client.get("/api/v1/usage").get_json()
    by_day = {d["date"]: d for d in data["days"]}
    assert by_day[today.date().isoformat()]["cost"] is None
    assert by_day[today.date().isoformat()]["unknown_cost_requests"] == 2
    assert by_day[today.date().isoformat()]["cached_tokens"] == 40
    assert by_day[yesterday.date().isoformat()]["cost"] == 0.25
    assert by_day[yesterday.date().isoformat()]["unknown_cost_requests"] == 1
    empty = by_day[(today - timedelta(days=5)).date().isoformat()]
    assert (empty["cost"], empty["requests"], empty["unknown_cost_requests"]) == (0, 0, 0)
    models = {m["model"]: m for m in data["models"]}
    assert [m["model"] for m in data["models"]] == ["gpt-4o", "local-llm"]  # known cost first
    assert models["local-llm"]["cost"] is None and models["local-llm"]["unknown_cost_requests"] == 3
    assert models["gpt-4o"]["cost"] == 0.25 and models["gpt-4o"]["unknown_cost_requests"] == 0
    totals = data["totals"]
    assert (totals["cost"], totals["unknown_cost_requests"], totals["requests"]) == (0.25, 3, 4)
    assert totals["cached_tokens"] == 44


def test_usage_range_and_other_users(client, user, app):
    day = datetime(2026, 3, 10, 8, tzinfo=timezone.utc)
    log_usage(app, user["id"], day, "m", 1, 2, "0")
    data = client.get("/api/v1/usage?from=2026-03-09&to=2026-03-10").get_json()
    assert [d["completion_tokens"] for d in data["days"]] == [0, 2]
    other = client.new()
    other.signup("other@example.com", "correct horse battery")
    assert other.get("/api/v1/usage?from=2026-03-09&to=2026-03-10").get_json()["totals"]["requests"] == 0


def test_usage_rejects_bad_ranges(client, user):
    assert_error(client.get("/api/v1/usage?from=yesterday"), 400, "invalid_parameter")
    assert_error(client.get("/api/v1/usage?from=2026-03-10&to=2026-03-01"), 400, "invalid_parameter")
    assert_error(client.get("/api/v1/usage?from=2020-01-01&to=2026-01-01"), 400, "invalid_parameter")
    assert_error(client.new().get("/api/v1/usage"), 401)
