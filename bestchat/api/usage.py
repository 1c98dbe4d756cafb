"""``GET /api/v1/usage``: the signed-in user's tokens and cost per day and per model, their plan
and their usage limits (what is used of each, and when it resets)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from flask import g, request

from bestchat.api import bp
from bestchat.api.openapi import documented, query, ref, string
from bestchat.errors import Invalid
from bestchat.security.authn import login_required
from bestchat.services import limits, usage, usage_report

DEFAULT_DAYS = 30
MAX_DAYS = 366


def _date_arg(name: str, default: date) -> date:
    """The date query parameter ``name`` (``default`` when absent); 400 unless a date in
    ``usage_report.FIRST_DATE..LAST_DATE``."""
    return usage_report.parse_date(request.args.get(name), name) or default


@bp.get("/usage")
@documented(parameters=[query("from", string(format="date"), "first day (UTC), inclusive"),
                        query("to", string(format="date"), "last day (UTC), inclusive")],
            responses={200: ref("Usage")})
@login_required
def get_usage():
    """Tokens and cost per day (UTC) and per model, the plan and the usage limits. Query: from,
    to (YYYY-MM-DD, inclusive, 1970-01-01 to 9999-12-30; default the last 30 days, at most 366
    days)."""
    today = datetime.now(timezone.utc).date()
    last = _date_arg("to", today)
    first = _date_arg("from", max(usage_report.FIRST_DATE, last - timedelta(days=DEFAULT_DAYS - 1)))
    if first > last:
        raise Invalid("invalid_parameter", "'from' must not be after 'to'")
    if (last - first).days >= MAX_DAYS:
        raise Invalid("invalid_parameter", f"the range is longer than {MAX_DAYS} days")
    return {**usage.report(g.user.id, first, last), **limits.summary(g.user.id)}
