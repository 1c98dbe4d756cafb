"""A user's usage limits: which value applies (resolution), and what the user has left.

Each kind of :data:`~bestchat.models.limits.LIMIT_KINDS` resolves on its own: the user's
override (``UserLimits``) when it sets the kind; else, among the user's groups that set it, the
most generous (largest) value; else the user's plan (:func:`bestchat.services.plans.plan_of`);
else no limit. The admission (``bestchat.services.admission``) enforces the result.

The resolution is on the first-token path, so it is cached per process under a version:
:func:`invalidate` bumps the version (in Redis when configured, so every process sees it; in
this process otherwise), and a cached entry made under an older version is resolved again
(as is any entry older than :data:`CACHE_SECONDS`).
Whoever changes an override, a group's limits, a membership, a plan or a subscription calls
:func:`invalidate`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import redis
from flask import has_app_context
from sqlalchemy import bindparam, case, func, literal, select, union_all

from bestchat.database import read_beside
from bestchat.extensions import db
from bestchat.models import Group, GroupMember, Plan, Subscription, UsageLog
from bestchat.models.limits import LIMIT_KINDS, UserLimits
from bestchat.services import plans

log = logging.getLogger(__name__)

VERSION = "bc:limits:version"
USER_VERSION = "bc:limits:version:"
# Cached resolutions kept per process; past this many the cache starts over.
CACHE_SIZE = 10000
# Seconds a cached resolution is trusted at most, even with its version current (a bound on
# staleness when an invalidation could not reach Redis).
CACHE_SECONDS = 60
MICRO = Decimal(1_000_000)


@dataclass(frozen=True)
class Limit:
    value: int | Decimal | None
    source: str | None  # user, group, plan; None with no limit


@dataclass(frozen=True)
class Effective:
    """The limit of each kind that applies to one user."""

    requests_per_minute: Limit
    tokens_per_day: Limit
    cost_per_month: Limit
    concurrent_generations: Limit

    def of(self, kind: str) -> Limit:
        return getattr(self, kind)

    @property
    def any(self) -> bool:
        return any(self.of(kind).value is not None for kind in LIMIT_KINDS)


NO_LIMITS = Effective(*(Limit(None, None) for _ in LIMIT_KINDS))

# user id (str) -> (version, Effective, monotonic time resolved); the local versions stand in
# for Redis without it.
_cache: dict[str, tuple[str, Effective, float]] = {}
_local: dict[str, int] = {}


def _as_uuid(user_id: uuid.UUID | str) -> uuid.UUID:
    return user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id))


def resolve(user_id: uuid.UUID | str) -> Effective:
    """The limits from the database, uncached (see the module docstring); none for an id
    that names no user. One statement reads the three levels (:func:`_levels_statement`)."""
    try:
        key = _as_uuid(user_id)
    except ValueError:
        return NO_LIMITS
    levels = {row[0]: row[1:] for row in read_beside(_LEVELS, {"user_id": key, "granting": plans.GRANTING})}
    found = []
    for index, kind in enumerate(LIMIT_KINDS):
        for source in ("user", "group", "plan"):
            value = levels.get(source, (None,) * len(LIMIT_KINDS))[index]
            if value is not None:
                found.append(Limit(Decimal(value) if kind == "cost_per_month" else int(value), source))
                break
        else:
            found.append(Limit(None, None))
    return Effective(*found)


def _levels_statement():
    """One row per level that exists for the user: ``(source, <the four limits>)``: the user's
    overrides, the largest value of each kind among their groups, and their plan (the plan of
    a subscription whose status grants it, else the active default plan; as
    :func:`bestchat.services.plans.plan_of`). Built once: it runs when a user's cached limits
    are resolved again, on the first-token path."""
    user_id = bindparam("user_id")
    columns = ["limit_" + kind for kind in LIMIT_KINDS]
    overrides = select(literal("user").label("source"), *(getattr(UserLimits, c) for c in columns)).where(
        UserLimits.user_id == user_id)
    groups = (select(literal("group"), *(func.max(getattr(Group, c)) for c in columns))
              .join(GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user_id)
              .having(func.count() > 0))
    subscribed = (select(Subscription.plan_id).where(Subscription.user_id == user_id,
                                                     Subscription.status.in_(bindparam("granting", expanding=True)))
                  .scalar_subquery())
    default = (select(Plan.id).where(Plan.is_default.is_(True), Plan.active.is_(True)).order_by(Plan.name)
               .limit(1).scalar_subquery())
    plan = select(literal("plan"), *(getattr(Plan, c) for c in columns)).where(
        Plan.id == func.coalesce(subscribed, default))
    return union_all(overrides, groups, plan)


_LEVELS = _levels_statement()


def _redis() -> redis.Redis | None:
    if not has_app_context():
        return None
    from bestchat.redis_client import get_redis

    return get_redis()


def version_keys(user_id: str) -> list[str]:
    return [VERSION, USER_VERSION + user_id]


def current_version(user_id: uuid.UUID | str) -> str:
    """The version the cache entry of ``user_id`` must carry to be current."""
    uid = str(user_id)
    client = _redis()
    if client is not None:
        try:
            everyone, mine = client.mget(version_keys(uid))
            return f"{int(everyone or 0)}:{int(mine or 0)}"
        except redis.RedisError:
            pass
    return f"{_local.get('', 0)}:{_local.get(uid, 0)}"


def cached(user_id: uuid.UUID | str, version: str | None = None) -> tuple[str, Effective]:
    """``(version, limits)`` of ``user_id``: the cached entry, resolved again when there is
    none, when it is older than :data:`CACHE_SECONDS` or (``version`` given) when it was made
    under another version. The caller checks the version itself when it can do so in a round
    trip it makes anyway (the Redis admission does); without ``version`` the entry is used as
    it is."""
    uid = str(user_id)
    entry = _cache.get(uid)
    if (entry is not None and (version is None or entry[0] == version)
            and time.monotonic() - entry[2] < CACHE_SECONDS):
        return entry[0], entry[1]
    now = version if version is not None else current_version(uid)
    entry = (now, resolve(uid), time.monotonic())
    if len(_cache) >= CACHE_SIZE:
        _cache.clear()
    _cache[uid] = entry
    return entry[0], entry[1]


def effective(user_id: uuid.UUID | str) -> Effective:
    """The limits that apply to ``user_id`` now (cached; checked against the current version)."""
    return cached(user_id, current_version(user_id))[1]


def invalidate(user_id: uuid.UUID | str | None = None) -> None:
    """Forget the cached limits of ``user_id`` (None: of everyone), in every process."""
    key = "" if user_id is None else str(user_id)
    _local[key] = _local.get(key, 0) + 1
    if user_id is None:
        _cache.clear()
    else:
        _cache.pop(key, None)
    client = _redis()
    if client is not None:
        try:
            client.incr(VERSION if user_id is None else USER_VERSION + key)
        except redis.RedisError:  # the other processes catch up within CACHE_SECONDS
            log.warning("could not invalidate the cached usage limits in Redis", exc_info=True)


# ---- windows and totals ------------------------------------------------------------------------


def minute_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def resets_at(kind: str, now: datetime) -> datetime | None:
    """When the window of ``kind`` that contains ``now`` (UTC) ends; None for concurrency."""
    if kind == "requests_per_minute":
        return minute_start(now) + timedelta(minutes=1)
    if kind == "tokens_per_day":
        return day_start(now) + timedelta(days=1)
    if kind == "cost_per_month":
        start = month_start(now)
        return (start + timedelta(days=32)).replace(day=1)
    return None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def tokens_since(user_id: uuid.UUID | str, since: datetime) -> int:
    """Prompt + completion tokens of ``user_id`` recorded since ``since``."""
    [(total,)] = read_beside(
        select(func.coalesce(func.sum(UsageLog.prompt_tokens + UsageLog.completion_tokens), 0))
        .where(UsageLog.user_id == _as_uuid(user_id), UsageLog.created_at >= _naive(since)))
    return int(total or 0)


def cost_since(user_id: uuid.UUID | str, since: datetime) -> tuple[Decimal, int]:
    """Known cost (USD) of ``user_id`` since ``since``, and how many rows had no known price."""
    [(total, unknown)] = read_beside(
        select(func.coalesce(func.sum(UsageLog.cost), 0),
               func.count().filter(UsageLog.cost.is_(None)))
        .where(UsageLog.user_id == _as_uuid(user_id), UsageLog.created_at >= _naive(since)))
    return Decimal(total or 0), int(unknown or 0)


def usage_totals(user_id: uuid.UUID | str, now: datetime) -> tuple[int, Decimal, int]:
    """In one query: tokens of ``user_id`` since the start of ``now``'s UTC day, known cost
    since the start of its month, and how many rows of the month had no known price."""
    today, cost, unknown = db.session.execute(_TOTALS, {
        "user_id": _as_uuid(user_id), "day": _naive(day_start(now)), "month": _naive(month_start(now))}).one()
    return int(today or 0), Decimal(cost or 0), int(unknown or 0)


def _totals_statement():
    """The statement of :func:`usage_totals`, built once (it runs on every admission of a
    limited user in embedded mode)."""
    tokens = UsageLog.prompt_tokens + UsageLog.completion_tokens
    return (select(func.coalesce(func.sum(case((UsageLog.created_at >= bindparam("day"), tokens), else_=0)), 0),
                   func.coalesce(func.sum(UsageLog.cost), 0),
                   func.count().filter(UsageLog.cost.is_(None)))
            .where(UsageLog.user_id == bindparam("user_id"), UsageLog.created_at >= bindparam("month")))


def _naive(moment: datetime) -> datetime:
    """``moment`` as the naive UTC the usage rows store, when they store naive times."""
    column_tz = UsageLog.__table__.c.created_at.type.timezone
    return moment if column_tz else moment.replace(tzinfo=None)


_TOTALS = _totals_statement()


def micro(amount: Decimal | int | float) -> int:
    """USD as whole micro-dollars (how the counters keep money)."""
    return int((Decimal(str(amount)) * MICRO).to_integral_value())


# ---- what GET /api/v1/usage shows ---------------------------------------------------------------


def summary(user_id: uuid.UUID | str) -> dict[str, Any]:
    """``{"plan": ..., "limits": {kind: {limit, used, remaining, resets_at, source}}}``: each
    limit that applies, what the user has used of it in its current window, and when that
    window ends (UTC)."""
    from bestchat.services.admission import get_admission

    key = _as_uuid(user_id)
    limits = effective(key)
    now = utcnow()
    admission = get_admission()
    tokens, cost, unknown = usage_totals(key, now)
    try:
        made, running = admission.requests_this_minute(str(key)), admission.in_flight_of(str(key))
    except redis.RedisError:  # the usage page still shows the totals from the database
        log.warning("could not read the request counters from Redis", exc_info=True)
        made = running = 0
    used: dict[str, Any] = {"requests_per_minute": made, "tokens_per_day": tokens,
                            "cost_per_month": float(cost), "concurrent_generations": running}
    out: dict[str, Any] = {}
    for kind in LIMIT_KINDS:
        limit = limits.of(kind)
        value = limit.value
        if value is not None:
            value = float(value) if kind == "cost_per_month" else int(value)
        remaining = None if value is None else max(value - used[kind], 0)
        reset = resets_at(kind, now)
        out[kind] = {"limit": value, "used": used[kind], "remaining": remaining,
                     "resets_at": reset.isoformat().replace("+00:00", "Z") if reset else None,
                     "source": limit.source}
    out["cost_per_month"]["unknown_cost_requests"] = unknown
    return {"plan": plans.plan_summary(key), "limits": out}
