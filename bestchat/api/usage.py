"""``GET /api/v1/usage``: the signed-in user's tokens and cost per day and per model."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from flask import g, request

from bestchat.api import bp
from bestchat.errors import ApiError
from bestchat.security.authn import login_required
from bestchat.services import usage

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _date_arg(name: str, default: date) -> date:
    raw = request.args.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"'{name}' must be a date (YYYY-MM-DD)") from None


@bp.get("/usage")
@login_required
def get_usage():
    """Tokens and cost per day (UTC) and per model. Query: from, to (YYYY-MM-DD, inclusive;
    default the last 30 days, at most 366 days)."""
    today = datetime.now(timezone.utc).date()
    last = _date_arg("to", today)
    first = _date_arg("from", last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise ApiError(400, "invalid_parameter", "'from' must not be after 'to'")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(400, "invalid_parameter", f"the range is longer than {MAX_DAYS} days")
    return usage.report(g.user.id, first, last)
