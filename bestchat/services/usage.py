"""Usage reports: a user's tokens and cost per day (UTC) and per model over a date range."""

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
    return {"prompt_tokens": 0, "completion_tokens": 0, "cost": Decimal(0), "requests": 0}


def _add(total: dict[str, Any], row) -> None:
    total["prompt_tokens"] += row.prompt_tokens
    total["completion_tokens"] += row.completion_tokens
    total["cost"] += row.cost or Decimal(0)
    total["requests"] += 1


def _plain(total: dict[str, Any]) -> dict[str, Any]:
    return {**total, "cost": float(total["cost"])}


def report(user_id: uuid.UUID, first: date, last: date) -> dict[str, Any]:
    """Totals per day (every day of ``first..last``, zeros included), per model, and overall."""
    start = datetime.combine(first, time.min, tzinfo=timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=timezone.utc)
    rows = db.session.execute(
        select(UsageLog.created_at, UsageLog.provider, UsageLog.model, UsageLog.prompt_tokens,
               UsageLog.completion_tokens, UsageLog.cost)
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
            key=lambda m: (-m["cost"], -(m["prompt_tokens"] + m["completion_tokens"]))),
        "totals": _plain(overall),
    }
