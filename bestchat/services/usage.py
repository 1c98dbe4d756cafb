"""Usage reports: a user's tokens and cost per day (UTC) and per model over a date range.

A usage row whose price was unknown has ``cost`` None. A bucket's ``cost`` is the sum of its
known costs, or None when every row in it is unknown (a bucket with no rows costs 0); its
``unknown_cost_requests`` counts the rows left out of that sum, so a reader can tell "$0.40
plus 3 requests of unknown price" from "$0.40".
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import UsageLog
from bestchat.models.base import as_utc


def _zero() -> dict[str, Any]:
    return {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "cost": Decimal(0),
            "requests": 0, "unknown_cost_requests": 0}


def _add(total: dict[str, Any], row) -> None:
    total["prompt_tokens"] += row.prompt_tokens
    total["completion_tokens"] += row.completion_tokens
    total["cached_tokens"] += row.cached_tokens or 0
    total["requests"] += 1
    if row.cost is None:
        total["unknown_cost_requests"] += 1
    else:
        total["cost"] += row.cost


def _plain(total: dict[str, Any]) -> dict[str, Any]:
    all_unknown = total["requests"] > 0 and total["unknown_cost_requests"] == total["requests"]
    return {**total, "cost": None if all_unknown else float(total["cost"])}


def _model_order(model: dict[str, Any]) -> tuple:
    """Most expensive first (unknown cost after every known one), then most tokens."""
    cost = model["cost"]
    return (cost is None, -(cost or 0), -(model["prompt_tokens"] + model["completion_tokens"]))


def report(user_id: uuid.UUID, first: date, last: date) -> dict[str, Any]:
    """Totals per day (every day of ``first..last``, zeros included), per model, and overall."""
    start = datetime.combine(first, time.min, tzinfo=timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=timezone.utc)
    rows = db.session.execute(
        select(UsageLog.created_at, UsageLog.provider, UsageLog.model, UsageLog.prompt_tokens,
               UsageLog.completion_tokens, UsageLog.cached_tokens, UsageLog.cost)
        .where(UsageLog.user_id == user_id, UsageLog.created_at >= start, UsageLog.created_at < end)
    ).all()
    days = {first + timedelta(days=i): _zero() for i in range((last - first).days + 1)}
    models: dict[tuple[str, str], dict[str, Any]] = defaultdict(_zero)
    overall = _zero()
    for row in rows:
        day = as_utc(row.created_at).date()
        if day in days:
            _add(days[day], row)
        _add(models[(row.provider, row.model)], row)
        _add(overall, row)
    return {
        "from": first.isoformat(), "to": last.isoformat(),
        "days": [{"date": day.isoformat(), **_plain(total)} for day, total in days.items()],
        "models": sorted(
            ({"provider": provider, "model": model, **_plain(total)}
             for (provider, model), total in models.items()),
            key=_model_order),
        "totals": _plain(overall),
    }
