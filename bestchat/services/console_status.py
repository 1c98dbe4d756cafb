"""What the console's home shows an operator first: how the server runs (mode, database, jobs),
whether its workers are alive, the answers in flight and waiting, failed plugins, the users,
and today's usage.

Readiness of the database and Redis is :func:`bestchat.health.backend_checks` (the checks of
``/readyz``); everything else is read here. Workers are known the way admission knows them:
each Celery worker registers its generation slots in Redis under a key that expires unless
refreshed (:mod:`bestchat.tasks.worker_slots`), so a registered worker is a live one. In
embedded mode jobs run on this process's own pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone

from flask import current_app
from sqlalchemy import func, or_, select

from bestchat import plugins
from bestchat.dispatch import get_dispatcher
from bestchat.extensions import db
from bestchat.models import Message, UsageLog, User
from bestchat.models.message_status import CLAIMABLE, MessageStatus
from bestchat.redis_client import get_redis
from bestchat.services.admission import WORKER, WORKERS


@dataclass(frozen=True)
class Mode:
    name: str  # "embedded" or "scale-out"
    database: str  # "sqlite", "postgresql", ...
    redis: bool
    jobs: str  # "in-process" or "celery"


@dataclass(frozen=True)
class Workers:
    """``state`` is ``in-process`` (embedded), ``up`` (registered Celery workers), ``none``
    (no worker registered) or ``unknown`` (Redis did not answer)."""

    state: str
    count: int = 0
    slots: int = 0


@dataclass(frozen=True)
class Generations:
    streaming: int
    queued: int  # pending or queued: waiting for a job
    waiting: int  # parked on a tool approval


@dataclass(frozen=True)
class Users:
    total: int
    admins: int
    disabled: int
    active_today: int


def mode() -> Mode:
    in_process = get_dispatcher().in_process
    database = db.engine.dialect.name
    redis = get_redis() is not None
    name = "embedded" if current_app.config["EMBEDDED"] else "scale-out"
    return Mode(name=name, database=database, redis=redis, jobs="in-process" if in_process else "celery")


def workers() -> Workers:
    """The live Celery workers and their generation slots (see the module docstring)."""
    if get_dispatcher().in_process:
        return Workers("in-process", 1, int(current_app.config["JOBS_CONCURRENCY"]))
    client = get_redis()
    if client is None:
        return Workers("unknown")
    try:
        ids = sorted(client.smembers(WORKERS))
        slots = [value for value in (client.mget([WORKER + _text(i) for i in ids]) if ids else []) if value]
    except Exception:  # noqa: BLE001 - Redis down is shown by the readiness checks
        return Workers("unknown")
    if not slots:
        return Workers("none")
    return Workers("up", len(slots), sum(int(value) for value in slots))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def generations() -> Generations:
    """Assistant messages streaming, waiting for a job, and parked on an approval."""
    watched = [MessageStatus.STREAMING, MessageStatus.WAITING, *CLAIMABLE]
    counts = dict(db.session.execute(
        select(Message.status, func.count()).where(Message.status.in_([s.value for s in watched]))
        .group_by(Message.status)).all())
    return Generations(streaming=counts.get(MessageStatus.STREAMING.value, 0),
                       queued=sum(counts.get(s.value, 0) for s in CLAIMABLE),
                       waiting=counts.get(MessageStatus.WAITING.value, 0))


def failed_plugins() -> list[str]:
    return [record["name"] for record in plugins.get_plugins() if record["status"] == "failed"]


def users() -> Users:
    """Every account, the admins, the disabled ones, and those active today (UTC): signed in
    today or with usage recorded today."""
    start = datetime.combine(datetime.now(timezone.utc).date(), time.min, tzinfo=timezone.utc)
    used_today = select(UsageLog.user_id).where(UsageLog.created_at >= start)
    total, admins, disabled, active = db.session.execute(select(
        func.count(),
        func.count().filter(User.role == "admin"),
        func.count().filter(User.disabled.is_(True)),
        func.count().filter(or_(User.last_login_at >= start, User.id.in_(used_today))),
    ).select_from(User)).one()
    return Users(total=total, admins=admins, disabled=disabled, active_today=active)
