"""The reaper: no message stays ``streaming`` (or ``pending``) after its job is gone.

A running job saves its message at least every ``STREAM_SAVE_INTERVAL`` seconds. A
``streaming`` message not saved for ``REAPER_STALE_AFTER`` seconds, or a ``pending``/
``queued`` one older than ``REAPER_PENDING_AFTER``, lost its worker (killed, out of memory,
machine gone): :func:`reap` marks it ``interrupted`` with the partial content the stream got
to, and its clients receive ``message.failed`` with code ``interrupted``. Each pass then
gives back the generation slots that such dead jobs never released
(:func:`bestchat.services.admission.forget_finished`) and ends the tool approvals nobody gave
in time (:func:`bestchat.services.tools.expire_approvals`). Each message is reaped in its own
transaction: one that cannot be saved is logged and left for the next pass, and never stops
the others (nor the slots' release).

:func:`start_reaper` runs it every ``REAPER_INTERVAL`` seconds in a greenlet of each web
process (one process at a time, under a Redis lock) and once at startup. In embedded mode
jobs live in the web process, so at startup every unfinished message is an orphan.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import gevent
from flask import Flask
from sqlalchemy import or_, select

from bestchat.extensions import db
from bestchat.models import Message
from bestchat.models.base import utcnow
from bestchat.models.message_status import ACTIVE, CLAIMABLE, MessageStatus
from bestchat.redis_client import get_redis
from bestchat.services.admission import forget_finished
from bestchat.services.tools import expire_approvals
from bestchat.store import get_store

log = logging.getLogger(__name__)

LOCK_KEY = "bc:reaper:lock"
BATCH = 500


def reap(app: Flask, *, orphans_only: bool = False) -> int:
    """One pass; returns how many messages were marked interrupted. With ``orphans_only``
    (embedded startup), every unfinished message is reaped whatever its age."""
    now = utcnow()
    stale = now - timedelta(seconds=app.config["REAPER_STALE_AFTER"])
    pending = now - timedelta(seconds=app.config["REAPER_PENDING_AFTER"])
    if orphans_only:
        stale = pending = now + timedelta(seconds=1)
    candidates = list(db.session.scalars(
        select(Message.id).where(or_(
            (Message.status == MessageStatus.STREAMING.value) & (Message.updated_at < stale),
            Message.status.in_(CLAIMABLE) & (Message.updated_at < pending),
        )).limit(BATCH)))
    db.session.commit()
    reaped = 0
    for message_id in candidates:
        if _reap_one(message_id, stale, pending):
            reaped += 1
    released = forget_finished(app)
    if released:
        log.warning("%d generation(s) ended without releasing their slot: released", released)
    try:
        expired = expire_approvals()
    except Exception:  # noqa: BLE001 - the next pass tries again
        db.session.rollback()
        log.exception("could not expire tool approvals; the next pass tries again")
    else:
        if expired:
            log.info("%d tool call(s) waited past TOOL_APPROVAL_TIMEOUT: treated as denied", expired)
    return reaped


def _reap_one(message_id: uuid.UUID, stale: datetime, pending: datetime) -> bool:
    """Interrupt the message in its own transaction; False if it was not (finished or deleted
    meanwhile, or the save failed: logged, and the next pass tries again)."""
    try:
        message = db.session.get(Message, message_id)
        if message is None or message.status not in ACTIVE:
            db.session.rollback()
            return False
        status = message.status
        cutoff = stale if status == MessageStatus.STREAMING else pending
        if get_store().interrupt(message, stale_before=cutoff) is None:
            return False
    except Exception:  # noqa: BLE001 - one row must not stop the pass
        db.session.rollback()
        log.exception("could not reap message %s; the next pass tries again", message_id)
        return False
    log.warning("message %s was %s with no live job: marked interrupted", message_id, status)
    return True


def start_reaper(app: Flask) -> gevent.Greenlet:
    """Reap now, then every ``REAPER_INTERVAL`` seconds, in a background greenlet."""
    return gevent.spawn(_loop, app)


def _loop(app: Flask) -> None:
    interval = float(app.config["REAPER_INTERVAL"])
    first = True
    while True:
        try:
            with app.app_context():
                if _lock(app, interval):
                    reap(app, orphans_only=first and app.config["EMBEDDED"])
                first = False
        except Exception:  # noqa: BLE001 - the next pass tries again
            log.exception("reaper pass failed")
        gevent.sleep(interval)


def _lock(app: Flask, interval: float) -> bool:
    """Only one web process reaps per interval (always true without Redis)."""
    client = get_redis(app)
    if client is None:
        return True
    return bool(client.set(LOCK_KEY, "1", nx=True, px=max(int(interval * 1000) - 100, 100)))
