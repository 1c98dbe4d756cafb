"""The stream bus's frame writer: the generations running in this process, and the three
greenlets they share.

A generation's provider greenlet only parses the provider's events and adds their text to the
generation's *pending* text (see :mod:`bestchat.services.generation`). Everything periodic or
per frame is done here, once per process for all of them, so that the cost per token does not
grow with bookkeeping:

- **the frame writer**: takes the pending text of every generation that has some, makes each
  into the generation's next ``chunk`` (next ``seq``) and publishes them all with ONE
  :meth:`StreamBus.append_many` call (one Redis round trip for the whole batch). Text that
  arrives while a batch is being written goes out in the next one: frames coalesce under load
  without a timer, so a lone token is published at once. With more than
  ``STREAM_BATCH_AFTER`` generations running, it waits ``STREAM_BATCH_MS`` after being woken
  so that the others' text shares the round trip. ``STREAM_FRAME_MS`` > 0 additionally
  holds a message's next frame until that many milliseconds after its previous one.
- **the housekeeper**: every ``STREAM_SAVE_INTERVAL`` seconds saves every generation's
  published content and ``last_seq`` in one transaction (the heartbeat the reaper watches; a
  message found no longer ``streaming`` stops its generation), ends generations whose
  provider sent nothing for ``STREAM_IDLE_TIMEOUT`` seconds, and ends those running longer
  than ``GENERATION_MAX_SECONDS`` (:class:`TooLong`: ``failed``, partial content kept), so
  no answer holds a slot for hours. While the bus cannot deliver
  cancellations live it also polls the cancel flags, every ``CANCEL_POLL`` seconds.
- **the cancel route**: the bus calls back when a cancel is requested anywhere
  (:meth:`StreamBus.on_cancel`); the generation is stopped at once, even while its provider
  is silent.

A generation is stopped by *settling* it (:meth:`Live.settle`): the first outcome wins and
wakes the generation's own greenlet, which then ends the message.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Callable

import gevent
from flask import Flask
from gevent.event import Event
from sqlalchemy import Integer, Text, Uuid, column, update
from sqlalchemy import values as sa_values

from bestchat.extensions import db
from bestchat.models import Message
from bestchat.models.base import utcnow
from bestchat.models.message_status import MessageStatus
from bestchat.providers.base import ProviderError
from bestchat.streaming import events, get_bus
from bestchat.streaming.bus import BusUnavailable
from bestchat.text import VALUE_REFUSED

log = logging.getLogger(__name__)

CANCEL_POLL = 0.25
# Seconds a cancel of a generation not running here is remembered, and for which the cancel
# route must have been live before that memory is trusted instead of asking the bus.
RECENT_CANCELS = 60.0
WRITE_RETRY_MAX = 2.0
FLUSH_TIMEOUT = 30.0

# How a generation ended, as settled by whoever noticed first.
END, CANCEL, STOPPED = "end", "cancel", "stopped"


class TooLong(ProviderError):
    """The generation ran longer than ``GENERATION_MAX_SECONDS``: it ends ``failed`` with the
    text received so far (a ProviderError, so the generation ends it like any failure)."""

    code = "too_long"


class Live:
    """One running generation as the shared greenlets see it: ids, text, and its outcome."""

    def __init__(self, message_id: uuid.UUID, conversation_id: str, seq: int, content: str):
        self.message_id = message_id
        self.key = str(message_id)
        self.conversation_id = conversation_id
        self.seq = seq
        self.content: list[str] = [content] if content else []  # published text
        self.pending: list[str] = []  # received, not yet published
        # Events (tool calls) to publish after the pending text, each built from the seq of the
        # message's last chunk before it.
        self.extra: list[Callable[[int], dict[str, Any]]] = []
        self.started = self.last_event = time.monotonic()
        self.last_frame = 0.0
        self.unwritten = 0  # frames taken by the writer and not yet written
        self.outcome: Any = None  # END, CANCEL, STOPPED or an exception
        self.settled = Event()
        self.flushed = Event()

    def settle(self, outcome: Any) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.settled.set()

    def text(self) -> str:
        return "".join(self.content)


class Running:
    """This process's running generations (one instance per app, see :func:`running`)."""

    def __init__(self, app: Flask):
        self.app = app
        config = app.config
        self.frame_seconds = config["STREAM_FRAME_MS"] / 1000
        self.batch_seconds = config["STREAM_BATCH_MS"] / 1000
        self.batch_after = config["STREAM_BATCH_AFTER"]
        self.save_seconds = float(config["STREAM_SAVE_INTERVAL"])
        self.idle_seconds = float(config["STREAM_IDLE_TIMEOUT"])
        self.max_seconds = float(config["GENERATION_MAX_SECONDS"] or 0)  # 0: no limit
        self.bus = get_bus(app)
        self.live: dict[str, Live] = {}
        self._dirty: dict[str, Live] = {}
        self._flushing: set[Live] = set()
        self._wake = Event()
        self._recent_cancels: dict[str, float] = {}
        self._cancels_since = time.monotonic()  # the cancel route's last (re)start
        self._cancels_live = self.bus.on_cancel(self._on_cancel)
        self._writer = gevent.spawn(self._write_forever)
        self._keeper = gevent.spawn(self._keep_forever)

    # ---- used by a generation -------------------------------------------------------------

    def add(self, live: Live) -> None:
        """Start tracking ``live``; then :meth:`check_cancelled`."""
        self.live[live.key] = live

    def check_cancelled(self, live: Live) -> None:
        """Settle ``live`` if a cancel was requested before it was added (known from the cancel
        route while it has been live for a while, else asked of the bus). A generation runs it
        in a greenlet beside its provider call, so the question to the bus does not delay the
        provider's first token."""
        if self._cancels_live() and time.monotonic() - self._cancels_since > RECENT_CANCELS:
            cancelled = live.key in self._recent_cancels
        else:
            cancelled = self.bus.cancel_requested(live.key)
        if cancelled:
            live.settle(CANCEL)

    def remove(self, live: Live) -> None:
        """Stop tracking ``live`` (not a later generation of the same message: an answer that
        paused for a tool approval may already be resumed by another job)."""
        if self.live.get(live.key) is live:
            del self.live[live.key]
        if self._dirty.get(live.key) is live:
            del self._dirty[live.key]

    def received(self, live: Live, text: str) -> None:
        """Text from the provider: published with the next batch (dropped once the generation
        is settled: after a cancel nothing more goes out, and the terminal event is last)."""
        if live.outcome is not None:
            return
        live.pending.append(text)
        if live.key not in self._dirty:
            self._dirty[live.key] = live
            self._wake.set()

    def emit(self, live: Live, build: Callable[[int], dict[str, Any]]) -> None:
        """Publish the event ``build(seq)`` in ``live``'s stream after its pending text (``seq``
        is its last chunk's) and wait until it is written."""
        live.extra.append(build)
        self.flush(live)

    def flush(self, live: Live) -> None:
        """Publish ``live``'s pending text now and wait until all its frames are written (so
        the terminal event published next comes after them)."""
        deadline = time.monotonic() + FLUSH_TIMEOUT
        try:
            while live.pending or live.extra or live.unwritten:
                live.flushed.clear()
                live.last_frame = 0.0  # no frame window for the last frame
                self._flushing.add(live)
                self._dirty[live.key] = live
                self._wake.set()
                if not live.flushed.wait(max(0.0, deadline - time.monotonic())):
                    raise BusUnavailable("the stream bus did not take the last frames in time")
        finally:
            self._flushing.discard(live)

    # ---- the frame writer -----------------------------------------------------------------

    def _write_forever(self) -> None:
        while True:
            self._wake.wait(self._next_due())
            if len(self.live) > self.batch_after and self.batch_seconds:
                gevent.sleep(self.batch_seconds)  # let the other answers' text join this batch
            self._wake.clear()
            try:
                self._write_once()
            except Exception:  # noqa: BLE001 - the writer must outlive any one failure
                log.exception("frame writer failed")

    def _next_due(self) -> float | None:
        """Seconds until a waiting frame may go out (None: nothing waits)."""
        if not self._dirty:
            return None
        if not self.frame_seconds:
            return 0.0
        due = min(live.last_frame for live in self._dirty.values()) + self.frame_seconds
        return max(0.0, due - time.monotonic())

    def _write_once(self) -> None:
        now = time.monotonic()
        batch: list[tuple[str, str, dict[str, Any]]] = []
        taken: list[Live] = []
        for key, live in list(self._dirty.items()):
            if self.frame_seconds and live.seq and now - live.last_frame < self.frame_seconds:
                continue  # its frame window is still open
            del self._dirty[key]
            if not live.pending and not live.extra:
                continue
            if live.pending:
                text = "".join(live.pending)
                live.pending.clear()
                live.seq += 1
                live.content.append(text)
                live.last_frame = now
                batch.append((live.conversation_id, live.key, events.chunk(
                    message_id=live.key, conversation_id=live.conversation_id, seq=live.seq, delta=text)))
            for build in live.extra:
                batch.append((live.conversation_id, live.key, build(live.seq)))
            live.extra.clear()
            live.unwritten += 1
            taken.append(live)
        if batch:
            self._append_with_retry(batch)
        for live in taken:
            live.unwritten -= 1
        for live in list(self._flushing):
            if not live.unwritten and not live.pending and not live.extra:
                self._flushing.discard(live)
                live.flushed.set()

    def _append_with_retry(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Write the batch; while the bus is down, retry with backoff (order is kept: nothing
        later is written before it)."""
        backoff = 0.05
        while True:
            try:
                self.bus.append_many(batch)
                return
            except Exception as error:  # noqa: BLE001
                log.warning("could not publish %d frames (%s); retrying in %.2fs",
                            len(batch), type(error).__name__, backoff)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, WRITE_RETRY_MAX)

    # ---- cancellation ---------------------------------------------------------------------

    def _on_cancel(self, message_id: str | None) -> None:
        """A cancel was requested (``None``: some may have been missed, check them all). Ids
        not running here are remembered for ``RECENT_CANCELS`` seconds: their job may be about
        to start (:meth:`add`)."""
        now = time.monotonic()
        if message_id is None:
            self._cancels_since = now
            for live in list(self.live.values()):
                if self.bus.cancel_requested(live.key):
                    live.settle(CANCEL)
            return
        live = self.live.get(message_id)
        if live is not None:
            live.settle(CANCEL)
            return
        self._recent_cancels[message_id] = now
        if len(self._recent_cancels) > 1000:
            self._recent_cancels = {key: at for key, at in self._recent_cancels.items()
                                    if now - at < RECENT_CANCELS}

    # ---- the housekeeper ------------------------------------------------------------------

    def _keep_forever(self) -> None:
        next_save = time.monotonic() + self.save_seconds
        while True:
            gevent.sleep(CANCEL_POLL if not self._cancels_live() else min(self.save_seconds, 1.0))
            try:
                now = time.monotonic()
                if not self._cancels_live():
                    self._on_cancel(None)
                self._end_idle(now)
                if now >= next_save:
                    next_save = now + self.save_seconds
                    self.save_all()
            except Exception:  # noqa: BLE001
                log.exception("generation housekeeping failed")

    def _end_idle(self, now: float) -> None:
        from bestchat.providers.base import ProviderTimeout

        for live in list(self.live.values()):
            if now - live.last_event > self.idle_seconds:
                live.settle(ProviderTimeout(
                    f"no answer from the provider for {self.idle_seconds:.0f} seconds"))
            elif self.max_seconds and now - live.started > self.max_seconds:
                live.settle(TooLong(f"the answer took longer than the limit of {self.max_seconds:g} "
                                    "seconds; it ends here"))

    def save_all(self) -> None:
        """Partial content and heartbeat of every running generation, in one transaction (on
        PostgreSQL one statement: ``UPDATE ... FROM (VALUES ...) RETURNING id``). A row not
        updated is no longer ``streaming`` (reaped, deleted): its generation stops. When the
        database refuses a value, each row is saved on its own (:func:`_save_each`), so one
        generation's text never stops the others' heartbeats."""
        lives = [live for live in self.live.values() if live.outcome is None]
        if not lives:
            return
        snapshot = [(live.message_id, live.seq, live.text()) for live in lives]
        with self.app.app_context():
            try:
                try:
                    updated = _save_partials(snapshot)
                    db.session.commit()
                except VALUE_REFUSED:
                    db.session.rollback()
                    updated = _save_each(snapshot)
            finally:
                db.session.remove()
        for live in lives:
            if live.message_id not in updated:
                live.settle(STOPPED)


def _save_partials(rows: list[tuple[uuid.UUID, int, str]]) -> set[uuid.UUID]:
    """UPDATE the streaming messages among ``rows`` (id, last_seq, content); their ids."""
    now = utcnow()
    if db.session.get_bind().dialect.name != "postgresql":  # SQLite: no UPDATE FROM VALUES alias
        updated = set()
        for message_id, seq, text in rows:
            result = db.session.execute(
                update(Message).where(Message.id == message_id, Message.status == MessageStatus.STREAMING)
                .values(content=text, last_seq=seq, updated_at=now)
                .execution_options(synchronize_session=False))
            if result.rowcount == 1:
                updated.add(message_id)
        return updated
    partial = sa_values(column("id", Uuid()), column("last_seq", Integer()), column("content", Text()),
                        name="partial").data(rows)
    return set(db.session.scalars(
        update(Message)
        .where(Message.id == partial.c.id, Message.status == MessageStatus.STREAMING)
        .values(content=partial.c.content, last_seq=partial.c.last_seq, updated_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)))


def _save_each(rows: list[tuple[uuid.UUID, int, str]]) -> set[uuid.UUID]:
    """:func:`_save_partials` with one transaction per row; a row whose content the database
    refuses gets its heartbeat only (its generation goes on; its end saves what it can)."""
    updated: set[uuid.UUID] = set()
    for row in rows:
        try:
            updated |= _save_partials([row])
        except VALUE_REFUSED:
            db.session.rollback()
            log.error("the database refused the partial content of message %s; saving its "
                      "heartbeat only", row[0])
            result = db.session.execute(
                update(Message).where(Message.id == row[0], Message.status == MessageStatus.STREAMING)
                .values(updated_at=utcnow()).execution_options(synchronize_session=False))
            if result.rowcount == 1:
                updated.add(row[0])
        db.session.commit()
    return updated


def running(app: Flask) -> Running:
    """This process's :class:`Running` for ``app`` (created, with its greenlets, on first use)."""
    instance = app.extensions.get("bestchat_running")
    if instance is None:
        instance = app.extensions["bestchat_running"] = Running(app)
    return instance
