"""Setting usage limits from the admin console: the values checked, a user's overrides saved
(audit-logged), and the cache of resolved limits invalidated.

A value is a non-negative whole number (requests, tokens, answers) or a non-negative amount of
USD with at most 4 decimals (cost); blank or None means "not set at this level". Groups take
their limits through :func:`bestchat.services.groups.create_group` / ``update_group``, which
check them here.
"""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.models import User
from bestchat.models.limits import LIMIT_KINDS, UserLimits
from bestchat.services import audit, limits

LABELS = {"requests_per_minute": "requests per minute", "tokens_per_day": "tokens per day (UTC)",
          "cost_per_month": "cost per month (USD, UTC calendar month)",
          "concurrent_generations": "answers generating at once"}
# Largest accepted values: what the columns (and the Redis counters) hold comfortably.
INT_MAX = 2**31 - 1
COST_MAX = Decimal("9999999999")


def checked(values: dict[str, Any]) -> dict[str, int | Decimal | None]:
    """``{kind: value or None}`` for every kind, from ``values`` (strings from a form, numbers,
    None or missing); :class:`Invalid` for a value that is not allowed."""
    out: dict[str, int | Decimal | None] = {}
    for kind in LIMIT_KINDS:
        raw = values.get(kind)
        if isinstance(raw, str):
            raw = raw.strip().replace(",", "").removeprefix("$")
        if raw is None or raw == "":
            out[kind] = None
            continue
        label = LABELS[kind]
        try:
            amount = Decimal(str(raw))
        except InvalidOperation:
            example = "an amount such as 12.50" if kind == "cost_per_month" else "a whole number of 0 or more"
            raise Invalid("invalid_field", f"the {label} is not a number: it must be {example}") from None
        if kind == "cost_per_month":
            if not amount.is_finite() or amount < 0 or amount > COST_MAX or amount.as_tuple().exponent < -4:
                raise Invalid("invalid_field", f"the {label} must be between 0 and {COST_MAX} with at most 4 decimals")
            out[kind] = amount
            continue
        if not amount.is_finite() or not 0 <= amount <= INT_MAX:
            raise Invalid("invalid_field", f"the {label} must be between 0 and {INT_MAX}")
        if amount != amount.to_integral_value():
            raise Invalid("invalid_field", f"the {label} must be a whole number of 0 or more")
        out[kind] = int(amount)
    return out


def columns(values: dict[str, Any]) -> dict[str, Any]:
    """Checked ``values`` as ``limit_<kind>`` column values."""
    return {"limit_" + kind: value for kind, value in checked(values).items()}


def of(row: Any) -> dict[str, Any]:
    """``{kind: value or None}`` of a plan, group or override row (None: nothing set)."""
    return {kind: None if row is None else getattr(row, "limit_" + kind) for kind in LIMIT_KINDS}


def shown(values: dict[str, Any]) -> dict[str, str]:
    """Values as an audit log or a form shows them (USD as text, nothing set as "")."""
    return {kind: "" if value is None else str(value) for kind, value in values.items()}


def user_overrides(user_id: uuid.UUID) -> UserLimits | None:
    return db.session.scalar(select(UserLimits).where(UserLimits.user_id == user_id))


def set_user_overrides(actor: User, user: User, values: dict[str, Any]) -> dict[str, Any]:
    """Replace ``user``'s overrides with ``values`` (checked first, nothing changed on error;
    all blank removes them); audit-logged; the user's cached limits invalidated."""
    new = checked(values)
    row = user_overrides(user.id)
    before = of(row)
    if all(value is None for value in new.values()):
        if row is not None:
            db.session.delete(row)
    else:
        if row is None:
            row = UserLimits(user_id=user.id)
            db.session.add(row)
        for kind, value in new.items():
            setattr(row, "limit_" + kind, value)
    changes = {kind: {"from": shown(before)[kind], "to": shown(new)[kind]}
               for kind in LIMIT_KINDS if before[kind] != new[kind]}
    audit.record("user.limits_set", actor.id, "user", user.id, email=user.email, changes=changes)
    db.session.commit()
    limits.invalidate(user.id)
    return new
