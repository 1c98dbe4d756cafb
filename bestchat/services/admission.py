"""Admission of new generations: how many can run (capacity), how many are running or waiting
(in flight), and the decision for one more.

Every answer the conversation service starts (send, edit, regenerate, the OpenAI-compatible
API) is admitted here first, before anything is written:

- fewer generations in flight than the capacity: it starts ``pending`` (a job slot is free);
- else, while fewer than ``GENERATION_QUEUE_LIMIT`` are already waiting: it starts ``queued``
  (clients show that it waits for a slot; the job claims it like a pending one);
- else it is refused: :class:`~bestchat.errors.Overloaded` (503 ``overloaded`` with
  ``Retry-After``), and the caller stores nothing.

Each user is also held to a fair share, in the same atomic decision, checked first: at most
``USER_MAX_ACTIVE_GENERATIONS`` of the user's answers in flight (beyond it
:class:`TooManyGenerations`, 429 ``too_many_generations``), and at most
``RATELIMIT_SEND_PER_USER`` new answers per window (beyond it
:class:`~bestchat.errors.RateLimited`, 429 ``rate_limited`` with ``Retry-After``; every
admission attempt counts). Without them one account could fill every
slot and the whole queue with answers it makes slow on purpose, and every other user would be
refused as ``overloaded``.

The user's usage limits (:mod:`bestchat.services.limits`: requests per minute, answers at
once, tokens per UTC day, cost per UTC month) are checked in the same atomic decision, after the
fair share and before the capacity (refusals from :mod:`bestchat.services.limit_errors`). A user
under a tokens or cost limit has at most one answer in flight: one that crosses the limit on its
way finishes, and the user ends at most one answer's worth over. Only an admitted answer counts
as a request of the minute.

In flight means admitted and not yet released. A generation is released when its job ends
(the generation task, in a ``finally``), when it is cancelled before its job ran,
or, for jobs that died without a word, by the reaper (:func:`forget_finished`), which drops
entries older than ``REAPER_STALE_AFTER`` whose message is no longer active.

Two implementations, chosen in :func:`init_admission` by where jobs run:

- :class:`RedisAdmission` (Celery workers): in flight is the sorted set ``bc:gen:inflight``
  (message ids, scored by admission time), shared by every web process; each user's answers
  are also in ``bc:gen:user:<user id>``, whose members no longer in flight are dropped at the
  user's next admission (so every release, whoever makes it, gives the user's place back too),
  and the user's send window is the counter ``bc:gen:rate:<user id>``. Capacity is the sum
  of the slots of the live workers: each worker registers its concurrency under
  ``bc:gen:worker:<worker id>`` (:class:`bestchat.tasks.worker_slots.WorkerSlots`), a key that
  expires unless refreshed, so a dead worker's slots disappear within seconds. One Lua script
  counts, decides and records in one atomic round trip (the user's share included), so web
  processes admitting at the same moment cannot overshoot together. The same script reads the
  user's limit counters (:mod:`bestchat.services.limit_counters`) and checks that the
  limits it was given are current (else the caller resolves them again and retries; a
  missing tokens or cost counter is seeded from the database the same way). With no worker
  registered at all the capacity is unknown: answers start ``pending`` (a worker that comes
  picks them up) and nothing is refused (the user's share still applies). If Redis cannot
  be reached the answer is refused as :class:`~bestchat.errors.Unavailable` (503).
- :class:`InProcessAdmission` (embedded mode, ``JOBS_IN_PROCESS``): the same decision over
  dicts, with capacity ``JOBS_CONCURRENCY``, the size of the in-process pool; a user's
  tokens and cost are summed from the database (one query) when a limit needs them.

:meth:`Admission.start` begins one answer's admission and returns an :class:`Admitting`; the
Redis admission runs its round trip in a greenlet meanwhile, so it overlaps the caller's
database work.
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from decimal import Decimal
from string import Template
from typing import Any, Callable

import gevent
import redis
from flask import Flask, current_app, has_app_context
from sqlalchemy import select

from bestchat.errors import Overloaded, RateLimited, Unavailable
from bestchat.services import limit_counters, limits
from bestchat.services.limit_errors import limit_exceeded, one_answer_at_a_time
from bestchat.extensions import db
from bestchat.models import Message
from bestchat.models.message_status import ACTIVE, MessageStatus
from bestchat.security.ratelimit import MemoryLimiter, parse_rule

log = logging.getLogger(__name__)

IN_FLIGHT = "bc:gen:inflight"
USER = "bc:gen:user:"
RATE = "bc:gen:rate:"
# A user's in-flight set is dropped this many seconds after their last admission (only keys
# of users who stopped sending go: an active user's set is refreshed with each admission).
USER_TTL = 86400
# The ids of the registered workers, and each one's slot count (bestchat.tasks.worker_slots).
WORKERS = "bc:gen:workers"
WORKER = "bc:gen:worker:"
# Seconds a refused client is told to wait before trying again.
RETRY_AFTER = 5
# In-flight entries the reaper looks at per pass.
PRUNE_BATCH = 500

PENDING, QUEUED = MessageStatus.PENDING, MessageStatus.QUEUED


class TooManyGenerations(RateLimited):
    """The user already has their share of answers in flight: refused before anything is stored."""

    def __init__(self, limit: int) -> None:
        super().__init__("too_many_generations",
                         f"you already have {limit} answers being generated, the most one user may "
                         "have at once; wait for one to finish (or cancel one) and try again",
                         details={"limit": limit}, retry_after=RETRY_AFTER)
        self.limit = limit


def send_rate_exceeded(retry_after: int) -> RateLimited:
    """The user sent more than ``RATELIMIT_SEND_PER_USER`` allows."""
    return RateLimited("rate_limited", f"too many messages sent; retry in {retry_after} s",
                       retry_after=retry_after)


def decide(in_flight: int, capacity: int, queue_limit: int) -> MessageStatus | None:
    """The status of one more generation: ``pending``, ``queued``, or None (refuse).
    A capacity of 0 means unknown (no worker registered): never queued nor refused."""
    if capacity <= 0 or in_flight < capacity:
        return PENDING
    return QUEUED if in_flight - capacity < queue_limit else None


class Admission(ABC):
    """Capacity and in-flight generations; see the module docstring. ``user_limit`` is the
    most answers one user may have in flight (0: no limit); ``send_rate`` the user's
    ``(count, seconds)`` window of admissions (None: no limit)."""

    def __init__(self, queue_limit: int, user_limit: int = 0, send_rate: tuple[int, int] | None = None):
        self.queue_limit = queue_limit
        self.user_limit = user_limit
        self.send_rate = send_rate
        # The app whose database holds the users' limits; None: limits are not checked.
        self.app: Flask | None = None

    def check_limits(self, app: Flask) -> None:
        """Check each user's usage limits too, resolved from ``app``'s database."""
        self.app = app

    def _in_app(self, function: Callable[[], Any]) -> Any:
        """``function()`` in an app context (a greenlet of :meth:`start` runs without one)."""
        if has_app_context() or self.app is None:
            return function()
        with self.app.app_context():
            return function()

    @abstractmethod
    def in_flight_of(self, user_id: str) -> int:
        """How many answers of ``user_id`` are in flight now."""

    @abstractmethod
    def requests_this_minute(self, user_id: str) -> int:
        """How many answers of ``user_id`` were admitted in this UTC minute."""

    @abstractmethod
    def admit(self, message_id: str, user_id: str) -> MessageStatus:
        """Count ``message_id`` (an answer of ``user_id``) in flight and return its starting
        status (``pending`` or ``queued``). Raise (counting nothing in flight)
        :class:`~bestchat.errors.RateLimited` past the user's send rate,
        :class:`TooManyGenerations` when the user has ``user_limit`` answers in flight,
        :class:`~bestchat.errors.Overloaded` when the queue is full."""

    @abstractmethod
    def release(self, *message_ids: str) -> None:
        """These generations ended (or will never run): no longer in flight."""

    def start(self, message_id: str, user_id: str) -> Admitting:
        """Admit ``message_id`` for the caller to take later (see :class:`Admitting`); here
        at once: nothing to overlap."""
        outcome = _outcome(self.admit, message_id, user_id)
        return Admitting(self, message_id, lambda: outcome)

    @abstractmethod
    def admitted_before(self, timestamp: float, limit: int = PRUNE_BATCH) -> list[str]:
        """Ids in flight that were admitted before ``timestamp`` (for the reaper's check)."""

    @abstractmethod
    def status(self) -> dict[str, int]:
        """``{capacity, in_flight, queue_limit}`` right now (capacity 0: no worker known)."""


class Admitting:
    """One answer's admission, started before the caller's reads and settled before its
    write. ``outcome`` gives the status or the exception :meth:`Admission.admit` raised,
    waiting for it if it is still on its way. :meth:`status` gives the result (or raises as
    :meth:`Admission.admit`) and hands the admission over to the caller; :meth:`abandon`
    gives it back when the caller fails before taking it; used as a context manager, it is
    given back on leaving unless it was taken."""

    def __init__(self, admission: Admission, message_id: str, outcome: Callable[[], Any]):
        self.message_id = message_id
        self._admission = admission
        self._taken = False
        self._outcome: Callable[[], Any] | None = outcome
        self._result: Any = None

    def _settled(self) -> Any:
        """The status, or the exception admit() raised."""
        if self._outcome is not None:
            self._result = self._outcome()
            self._outcome = None
        return self._result

    def status(self) -> MessageStatus:
        self._taken = True
        result = self._settled()
        if isinstance(result, BaseException):
            raise result
        return result

    def __enter__(self) -> Admitting:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.abandon()  # (given back unless the caller took it)

    def abandon(self) -> None:
        if self._taken:
            return
        self._taken = True
        if not isinstance(self._settled(), BaseException):
            try:
                self._admission.release(self.message_id)
            except Exception:  # noqa: BLE001 - the reaper catches up
                log.warning("could not release %s from the in-flight count", self.message_id, exc_info=True)


def _outcome(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - given to the caller by Admitting.status()
        return error


class InProcessAdmission(Admission):
    """Jobs run on this process's pool of ``capacity`` greenlets."""

    def __init__(self, capacity: int, queue_limit: int, user_limit: int = 0,
                 send_rate: tuple[int, int] | None = None):
        super().__init__(queue_limit, user_limit, send_rate)
        self.capacity = capacity
        self.in_flight: dict[str, float] = {}
        self.owner: dict[str, str] = {}  # message id -> user id, for what is in flight
        self.by_user: dict[str, set[str]] = {}
        self.sends = MemoryLimiter()
        self.minutes: dict[str, tuple[str, int]] = {}  # user id -> (minute, answers admitted in it)

    def admit(self, message_id: str, user_id: str) -> MessageStatus:
        if self.send_rate is not None:
            retry_after = self.sends.hit(user_id, *self.send_rate)
            if retry_after:
                raise send_rate_exceeded(retry_after)
        mine = self.by_user.get(user_id, ())
        if self.user_limit > 0 and len(mine) >= self.user_limit:
            raise TooManyGenerations(self.user_limit)
        now = limits.utcnow()
        minute = f"{now:%Y%m%d%H%M}"
        if self.app is not None:
            self._check_limits(user_id, len(mine), minute, now)
        status = decide(len(self.in_flight), self.capacity, self.queue_limit)
        if status is None:
            raise Overloaded(RETRY_AFTER)
        self.in_flight[message_id] = time.time()
        self.owner[message_id] = user_id
        self.by_user.setdefault(user_id, set()).add(message_id)
        made = self.minutes.get(user_id)
        self.minutes[user_id] = (minute, made[1] + 1 if made and made[0] == minute else 1)
        return status

    def _check_limits(self, user_id: str, mine: int, minute: str, now) -> None:
        """Raise the refusal of the first of the user's limits this answer would break; the
        totals come from the database (nothing else to read in one process)."""
        effective = self._in_app(lambda: limits.effective(user_id))
        if not effective.any:
            return
        used: dict[str, Any] = {}
        cost, tokens = effective.cost_per_month, effective.tokens_per_day
        if cost.value is not None or tokens.value is not None:
            today, spent, _ = self._in_app(lambda: limits.usage_totals(user_id, now))
            if cost.value is not None:
                used["cost_per_month"] = spent
                if spent >= cost.value:
                    raise limit_exceeded("cost_per_month", cost, spent, now)
            if tokens.value is not None:
                used["tokens_per_day"] = today
                if today >= tokens.value:
                    raise limit_exceeded("tokens_per_day", tokens, today, now)
        concurrent = effective.concurrent_generations
        if concurrent.value is not None and mine >= concurrent.value:
            raise limit_exceeded("concurrent_generations", concurrent, mine, now)
        if used and mine >= 1:
            kind = "tokens_per_day" if "tokens_per_day" in used else "cost_per_month"
            raise one_answer_at_a_time(kind, effective.of(kind), used[kind], now)
        per_minute = effective.requests_per_minute
        made = self.minutes.get(user_id)
        made_now = made[1] if made and made[0] == minute else 0
        if per_minute.value is not None and made_now >= per_minute.value:
            raise limit_exceeded("requests_per_minute", per_minute, made_now, now)

    def in_flight_of(self, user_id: str) -> int:
        return len(self.by_user.get(user_id, ()))

    def requests_this_minute(self, user_id: str) -> int:
        made = self.minutes.get(user_id)
        return made[1] if made and made[0] == f"{limits.utcnow():%Y%m%d%H%M}" else 0

    def release(self, *message_ids: str) -> None:
        for message_id in message_ids:
            self.in_flight.pop(message_id, None)
            user_id = self.owner.pop(message_id, None)
            mine = self.by_user.get(user_id) if user_id is not None else None
            if mine is not None:
                mine.discard(message_id)
                if not mine:
                    del self.by_user[user_id]

    def admitted_before(self, timestamp: float, limit: int = PRUNE_BATCH) -> list[str]:
        return [key for key, admitted in list(self.in_flight.items()) if admitted < timestamp][:limit]

    def status(self) -> dict[str, int]:
        return {"capacity": self.capacity, "in_flight": len(self.in_flight),
                "queue_limit": self.queue_limit}


# KEYS: in-flight set, worker set, the user's in-flight set, the user's send counter, the two
# limit version keys (everyone's, the user's), the user's counters: answers this minute, tokens
# today, micro-dollars this month.
# ARGV: message id ("" = only count), queue limit, now, worker key prefix, the user's limit
# (0 = none), send rate count and seconds (0 = none), USER_TTL, the limits' version ("" = no
# limits checked), the limits: per minute, at once, tokens, micro-dollars (-1 = none), the
# minute counter's ttl.
# Returns {status or "", in flight, capacity}; status "refused" when full, "user" past the
# user's limit, "rate" past the send rate (then the second value is the seconds to wait);
# "stale" when the limits' version changed (the second value is the current one), "seed" when a
# counter a limit needs is missing (the second value is its kind): the caller settles it and
# runs the script again, nothing was counted. A limit kind ("tokens_per_day"...) past that
# limit, "one:<kind>" for a second answer under a tokens or cost limit; then the second value is
# what is used. The user's members no longer in flight (released by a job, a cancel, the
# reaper) are dropped before counting. Same rule as decide().
_ADMIT = Template("""
local capacity = 0
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local slots = redis.call('GET', ARGV[4] .. worker)
  if slots then capacity = capacity + tonumber(slots) else redis.call('SREM', KEYS[2], worker) end
end
local in_flight = redis.call('ZCARD', KEYS[1])
if ARGV[1] == '' then return {'', in_flight, capacity} end
local per_minute, at_once = tonumber(ARGV[10]), tonumber(ARGV[11])
local tokens, cost = tonumber(ARGV[12]), tonumber(ARGV[13])
if ARGV[9] ~= '' then
  local version = (redis.call('GET', KEYS[5]) or '0') .. ':' .. (redis.call('GET', KEYS[6]) or '0')
  if version ~= ARGV[9] then return {'stale', version, capacity} end
  if tokens >= 0 and redis.call('EXISTS', KEYS[8]) == 0 then return {'seed', 'tokens_per_day', capacity} end
  if cost >= 0 and redis.call('EXISTS', KEYS[9]) == 0 then return {'seed', 'cost_per_month', capacity} end
end
local rate = tonumber(ARGV[6])
if rate > 0 then
  local hits = redis.call('INCR', KEYS[4])
  if hits == 1 then redis.call('EXPIRE', KEYS[4], ARGV[7]) end
  if hits > rate then
    local wait = redis.call('TTL', KEYS[4])
    if wait < 0 then redis.call('EXPIRE', KEYS[4], ARGV[7]); wait = tonumber(ARGV[7]) end
    return {'rate', math.max(wait, 1), capacity}
  end
end
local user_limit = tonumber(ARGV[5])
local mine = 0
if user_limit > 0 or at_once >= 0 or tokens >= 0 or cost >= 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    if not redis.call('ZSCORE', KEYS[1], member) then redis.call('ZREM', KEYS[3], member) end
  end
  mine = redis.call('ZCARD', KEYS[3])
end
if user_limit > 0 and mine >= user_limit then return {'user', in_flight, capacity} end
local spent, used = 0, 0
if cost >= 0 then
  spent = tonumber(redis.call('GET', KEYS[9]) or '0')
  if spent >= cost then return {'cost_per_month', spent, capacity} end
end
if tokens >= 0 then
  used = tonumber(redis.call('GET', KEYS[8]) or '0')
  if used >= tokens then return {'tokens_per_day', used, capacity} end
end
if at_once >= 0 and mine >= at_once then return {'concurrent_generations', mine, capacity} end
if mine >= 1 then
  if tokens >= 0 then return {'one:tokens_per_day', used, capacity} end
  if cost >= 0 then return {'one:cost_per_month', spent, capacity} end
end
local made = tonumber(redis.call('GET', KEYS[7]) or '0')
if per_minute >= 0 and made >= per_minute then return {'requests_per_minute', made, capacity} end
local status = '$pending'
if capacity > 0 and in_flight >= capacity then
  if in_flight - capacity >= tonumber(ARGV[2]) then return {'refused', in_flight, capacity} end
  status = '$queued'
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('INCR', KEYS[7])
redis.call('EXPIRE', KEYS[7], ARGV[14])
return {status, in_flight, capacity}
""").substitute(pending=PENDING.value, queued=QUEUED.value)

# A limit of -1 tells the script there is none.
NONE = -1
# Seconds the answers-this-minute counter outlives its minute.
MINUTE_TTL = 120


def _script_limits(effective: limits.Effective | None) -> list[int]:
    """The four limits as the script takes them: per minute, at once, tokens, micro-dollars."""
    if effective is None:
        return [NONE] * 4

    def value(limit: limits.Limit, convert: Callable[[Any], int] = int) -> int:
        return NONE if limit.value is None else convert(limit.value)

    return [value(effective.requests_per_minute), value(effective.concurrent_generations),
            value(effective.tokens_per_day), value(effective.cost_per_month, limits.micro)]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisAdmission(Admission):
    """Jobs run on Celery workers; state shared through Redis."""

    def __init__(self, client: redis.Redis, queue_limit: int, user_limit: int = 0,
                 send_rate: tuple[int, int] | None = None):
        super().__init__(queue_limit, user_limit, send_rate)
        self.redis = client
        self._admit = client.register_script(_ADMIT)

    def _run(self, message_id: str, user_id: str = "",
             quota: tuple[str, limits.Effective] | None = None) -> tuple[str, Any, int]:
        rate, seconds = self.send_rate or (0, 0)
        now = limits.utcnow()
        version, effective = quota if quota is not None else ("", None)
        status, value, capacity = self._admit(
            keys=[IN_FLIGHT, WORKERS, USER + user_id, RATE + user_id, *limits.version_keys(user_id),
                  limit_counters.minute_key(user_id, now), limit_counters.tokens_key(user_id, now),
                  limit_counters.cost_key(user_id, now)],
            args=[message_id, self.queue_limit, time.time(), WORKER, self.user_limit, rate, seconds,
                  USER_TTL, version, *_script_limits(effective), MINUTE_TTL])
        return _text(status), value, int(capacity)

    def start(self, message_id: str, user_id: str) -> Admitting:
        """Admit ``message_id`` in a greenlet: the round trip overlaps the caller's work until
        it takes the result (see :class:`Admitting`). The user's limits come from this
        process's cache (read here, where the database is at hand); the script checks that
        they are current."""
        quota = limits.cached(user_id) if self.app is not None else None
        return Admitting(self, message_id,
                         gevent.spawn(_outcome, self.admit, message_id, user_id, quota).get)

    def admit(self, message_id: str, user_id: str,
              quota: tuple[str, limits.Effective] | None = None) -> MessageStatus:
        if self.app is not None and quota is None:
            quota = self._in_app(lambda: limits.cached(user_id))
        try:
            for _ in range(4):
                status, value, _ = self._run(message_id, user_id, quota)
                if status == "stale":
                    version = _text(value)
                    quota = self._in_app(lambda: limits.cached(user_id, version))
                elif status == "seed":
                    kind = _text(value)
                    self._in_app(lambda: limit_counters.seed(self.redis, kind, user_id, limits.utcnow()))
                else:
                    break
        except redis.RedisError as error:
            raise Unavailable("unavailable", "the generation queue is unreachable; try again",
                              retry_after=RETRY_AFTER) from error
        if status == "rate":
            raise send_rate_exceeded(int(value))
        if status == "user":
            raise TooManyGenerations(self.user_limit)
        if status == "refused":
            raise Overloaded(RETRY_AFTER)
        if status in ("stale", "seed"):
            raise Unavailable("unavailable", "the usage limits could not be read; try again",
                              retry_after=RETRY_AFTER)
        if status in limits.LIMIT_KINDS or status.startswith("one:"):
            kind = status.removeprefix("one:")
            limit = quota[1].of(kind)
            used = _used(kind, value)
            now = limits.utcnow()
            raise (one_answer_at_a_time if status.startswith("one:") else limit_exceeded)(kind, limit, used, now)
        return MessageStatus(status)

    def release(self, *message_ids: str) -> None:
        if message_ids:
            self.redis.zrem(IN_FLIGHT, *message_ids)

    def admitted_before(self, timestamp: float, limit: int = PRUNE_BATCH) -> list[str]:
        return self.redis.zrangebyscore(IN_FLIGHT, "-inf", f"({timestamp}", start=0, num=limit)

    def status(self) -> dict[str, int]:
        _, in_flight, capacity = self._run("")
        return {"capacity": capacity, "in_flight": int(in_flight), "queue_limit": self.queue_limit}

    def in_flight_of(self, user_id: str) -> int:
        members = self.redis.zrange(USER + user_id, 0, -1)
        if not members:
            return 0
        return sum(score is not None for score in self.redis.zmscore(IN_FLIGHT, members))

    def requests_this_minute(self, user_id: str) -> int:
        return int(self.redis.get(limit_counters.minute_key(user_id, limits.utcnow())) or 0)


def _used(kind: str, value: Any) -> Any:
    """What the script reports used of ``kind``, in the limit's unit (USD for cost)."""
    if kind == "cost_per_month":
        return Decimal(int(value)) / limits.MICRO
    return int(value)


def init_admission(app: Flask, *, in_process: bool) -> None:
    """The Redis admission when jobs go to Celery workers, else (jobs in this process, or no
    Redis at all) the in-process one."""
    from bestchat.redis_client import get_redis

    limit = int(app.config["GENERATION_QUEUE_LIMIT"])
    user_limit = int(app.config["USER_MAX_ACTIVE_GENERATIONS"] or 0)
    rule = app.config["RATELIMIT_SEND_PER_USER"]
    send_rate = parse_rule(rule) if rule else None
    client = get_redis(app)
    if in_process or client is None:
        admission: Admission = InProcessAdmission(int(app.config["JOBS_CONCURRENCY"]), limit,
                                                  user_limit, send_rate)
    else:
        admission = RedisAdmission(client, limit, user_limit, send_rate)
    admission.check_limits(app)
    limit_counters.init_limit_counters(app)
    app.extensions["bestchat_admission"] = admission


def get_admission(app: Flask | None = None) -> Admission:
    return (app or current_app).extensions["bestchat_admission"]


def release_quietly(*message_ids: str) -> None:
    """:meth:`Admission.release` that only logs a failure (the reaper catches up)."""
    try:
        get_admission().release(*message_ids)
    except Exception:  # noqa: BLE001 - never fail the caller over bookkeeping
        log.warning("could not release %s from the in-flight count", message_ids, exc_info=True)


def forget_finished(app: Flask) -> int:
    """Release the generations admitted more than ``REAPER_STALE_AFTER`` seconds ago whose
    message is no longer active (its job died without releasing it, or it was deleted).
    The reaper calls this after each pass; returns how many were released."""
    admission = get_admission(app)
    ids = admission.admitted_before(time.time() - float(app.config["REAPER_STALE_AFTER"]))
    if not ids:
        return 0
    keys = []
    for raw in ids:
        try:
            keys.append(uuid.UUID(raw))
        except ValueError:
            pass
    active = {str(key) for key in db.session.scalars(
        select(Message.id).where(Message.id.in_(keys), Message.status.in_(ACTIVE)))}
    db.session.commit()
    gone = [raw for raw in ids if raw not in active]
    admission.release(*gone)
    return len(gone)
