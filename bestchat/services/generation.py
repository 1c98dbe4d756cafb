"""One generation job: write an assistant message by streaming from its provider.

:func:`generate` is what the ``bestchat.generate`` task runs (on a Celery worker, or on the
in-process pool in embedded mode). It claims the message (``pending`` -> ``streaming``),
builds the prompt, runs the ``before_generate`` filters, resolves the provider targets and
streams with failover. Text deltas are coalesced into frames (the first delta goes out at
once, then at most one frame per ``STREAM_FRAME_MS``); each frame is one ``chunk`` with the
next ``seq``. Each publish also reads the cancellation flag (in the same round trip) and a
timer checks it while no frame goes out; at least every
``STREAM_SAVE_INTERVAL`` seconds it saves the partial content, which is also the heartbeat
the reaper watches. At the end it stores the content, a usage row and runs the
``after_generate`` filters, or ends the message ``failed``/``cancelled``.

Every write is conditional on the message still being ``streaming``: if the reaper or a
delete got there first, the job stops quietly. The provider runs in its own greenlet feeding
a queue, so frames, heartbeats and cancellation do not wait for the provider's next event.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import gevent
from flask import Flask, current_app
from gevent.queue import Empty, Queue
from sqlalchemy import update

from bestchat import plugins
from bestchat.errors import ApiError
from bestchat.extensions import db
from bestchat.models import Message, UsageLog, User
from bestchat.models.base import utcnow
from bestchat.providers import registry
from bestchat.providers.base import Finish, ProviderError, ProviderTimeout, TextDelta, Usage
from bestchat.services import conversations, message_status
from bestchat.streaming import events, get_bus

log = logging.getLogger(__name__)

# Cancellation is checked after every frame, and at least this often (seconds) in between.
POLL_INTERVAL = 0.25


class _Stopped(Exception):
    """The message left ``streaming`` under the job (reaped, cancelled before start, deleted)."""


def generate(message_id: str) -> None:
    """Generate the answer ``message_id``; safe to run twice (a redelivered job after its worker
    died finds the message ``streaming`` and marks it ``interrupted`` rather than starting over)."""
    message = db.session.get(Message, uuid.UUID(message_id))
    if message is None:
        return
    if message.status == "streaming":
        log.warning("generation of %s was redelivered; marking it interrupted", message_id)
        message_status.interrupt(message)
        return
    if not _claim(message.id):
        return
    db.session.refresh(message)
    Generation(current_app._get_current_object(), message).run()


def _claim(message_id: uuid.UUID) -> bool:
    result = db.session.execute(
        update(Message).where(Message.id == message_id, Message.status.in_(("pending", "queued")))
        .values(status="streaming", updated_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    return result.rowcount == 1


@dataclass
class _Frames:
    """Deltas waiting to be published as the next frame."""
    parts: list[str] = field(default_factory=list)
    started: float = 0.0

    def add(self, text: str, now: float) -> None:
        if not self.parts:
            self.started = now
        self.parts.append(text)

    def take(self) -> str:
        text, self.parts = "".join(self.parts), []
        return text


class Generation:
    """The state of one running generation. Holds ids and plain values only, so no database
    connection stays checked out between its short transactions."""

    def __init__(self, app: Flask, message: Message):
        self.app = app
        config = app.config
        self.frame_seconds = config["STREAM_FRAME_MS"] / 1000
        self.save_seconds = float(config["STREAM_SAVE_INTERVAL"])
        self.idle_seconds = float(config["STREAM_IDLE_TIMEOUT"])
        self.bus = get_bus(app)
        self.message_id = message.id
        self.key = str(message.id)
        self.conversation_id = str(message.conversation_id)
        self.user_id = message.conversation.user_id
        self.model_id = message.model
        self.seq = message.last_seq
        self.content: list[str] = [message.content] if message.content else []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.target: registry.Target | None = None
        self.prompt: list[dict[str, Any]] = []

    def run(self) -> None:
        try:
            targets, options = self._prepare()
            cancelled = self._stream(targets, options)
            if cancelled:
                self._end_cancelled()
            else:
                self._end_complete()
        except _Stopped:
            log.info("generation of %s stopped: the message is no longer streaming", self.key)
        except (ProviderError, ApiError) as error:
            self._end_failed(error.code, error.message)
        except Exception:
            log.exception("generation of %s failed", self.key)
            self._end_failed("internal_error", "the generation failed unexpectedly")

    # ---- steps ----------------------------------------------------------------------------

    def _prepare(self) -> tuple[list[registry.Target], dict[str, Any]]:
        message = db.session.get(Message, self.message_id)
        user = db.session.get(User, self.user_id)
        conversation = message.conversation
        prompt = conversations.prompt_for(message)
        self.prompt = plugins.run_before_generate(conversation, prompt)
        targets = registry.resolve_targets(user, self.model_id)
        options = dict(conversation.settings or {})
        db.session.commit()
        return targets, options

    def _stream(self, targets: list[registry.Target], options: dict[str, Any]) -> bool:
        """Publish the provider's text as frames; True if cancelled."""
        queue: Queue = Queue()
        producer = gevent.spawn(self._produce, queue, targets, options)
        frames = _Frames()
        now = time.monotonic()
        last_event, next_save, next_poll = now, now + self.save_seconds, now + POLL_INTERVAL
        try:
            while True:
                deadline = frames.started + self.frame_seconds if frames.parts else next_save
                timeout = max(0.0, min(deadline, next_poll) - time.monotonic())
                try:
                    kind, payload = queue.get(timeout=timeout)
                except Empty:
                    kind, payload = "tick", None
                now = time.monotonic()
                if kind == "error":
                    raise payload
                if kind == "end":
                    break
                if kind == "event":
                    last_event = now
                    self._take_event(payload, frames, now)
                elif now - last_event > self.idle_seconds:
                    raise ProviderTimeout(f"no answer from the provider for {self.idle_seconds:.0f} seconds")
                if frames.parts and (self.seq == 0 or now - frames.started >= self.frame_seconds):
                    cancelled = self._publish(frames.take())  # the cancel flag rides along
                    next_poll = now + POLL_INTERVAL
                elif now >= next_poll:
                    cancelled = self.bus.cancel_requested(self.key)
                    next_poll = now + POLL_INTERVAL
                else:
                    cancelled = False
                if cancelled:
                    self._publish(frames.take())
                    return True
                if now >= next_save:
                    self._save()
                    next_save = now + self.save_seconds
            self._publish(frames.take())
            return False
        finally:
            producer.kill(block=False)

    def _produce(self, queue: Queue, targets: list[registry.Target], options: dict[str, Any]) -> None:
        with self.app.app_context():
            try:
                for target, event in registry.stream_with_failover(targets, self.prompt, options):
                    queue.put(("event", (target, event)))
                queue.put(("end", None))
            except Exception as error:  # handed to the consumer, which ends the message
                queue.put(("error", error))

    def _take_event(self, payload: tuple[registry.Target, Any], frames: _Frames, now: float) -> None:
        target, event = payload
        self.target = target
        if isinstance(event, TextDelta) and event.text:
            frames.add(event.text, now)
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, Finish):
            self.finish_reason = event.reason
        else:
            log.info("generation of %s: ignoring %s (not supported yet)", self.key, type(event).__name__)

    def _publish(self, text: str) -> bool:
        """Publish ``text`` as the next chunk (nothing if empty); True if a cancel was requested."""
        if not text:
            return False
        self.seq += 1
        self.content.append(text)
        return self.bus.append(self.conversation_id, self.key, events.chunk(
            message_id=self.key, conversation_id=self.conversation_id, seq=self.seq, delta=text))

    def _save(self) -> None:
        """Partial content and heartbeat, in one short transaction."""
        result = db.session.execute(
            update(Message).where(Message.id == self.message_id, Message.status == "streaming")
            .values(content="".join(self.content), last_seq=self.seq, updated_at=utcnow())
            .execution_options(synchronize_session=False))
        db.session.commit()
        if result.rowcount != 1:
            raise _Stopped()

    # ---- endings --------------------------------------------------------------------------

    def _served(self) -> dict[str, Any]:
        if self.target is None:
            return {}
        return {"provider": self.target.provider_name, "model": self.target.model_id}

    def _usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        prompt_chars = sum(len(str(m.get("content") or "")) for m in self.prompt)
        return Usage(prompt_tokens=math.ceil(prompt_chars / 4),
                     completion_tokens=math.ceil(len("".join(self.content)) / 4))

    def _log_usage(self, message: Message, usage: Usage) -> None:
        if self.target is None:
            return
        db.session.add(UsageLog(
            user_id=self.user_id, conversation_id=message.conversation_id, message_id=message.id,
            provider=self.target.provider_name, model=self.target.model,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cost=Decimal(str(usage.cost or 0))))

    def _end_complete(self) -> None:
        usage = self._usage()
        renamed: list[Any] = []

        def on_finished(message: Message) -> None:
            self._log_usage(message, usage)
            plugins.run_after_generate(message)
            conversation = conversations.auto_title(message)
            if conversation is not None:
                renamed.append(conversation)

        message = message_status.finish(
            self.message_id, "complete", from_statuses=("streaming",), usage=_usage_json(usage),
            finish_reason=self.finish_reason, on_finished=on_finished, content="".join(self.content),
            last_seq=self.seq, token_count=usage.completion_tokens, **self._served())
        if message is None:
            raise _Stopped()
        for conversation in renamed:
            conversations.announce(conversation)

    def _end_cancelled(self) -> None:
        usage = self._usage()
        message_status.finish(
            self.message_id, "cancelled", from_statuses=("streaming",), usage=_usage_json(usage),
            on_finished=lambda message: self._log_usage(message, usage),
            content="".join(self.content), last_seq=self.seq, token_count=usage.completion_tokens,
            **self._served())

    def _end_failed(self, code: str, text: str) -> None:
        db.session.rollback()
        message_status.finish(
            self.message_id, "failed", from_statuses=("streaming",), error=text, error_code=code,
            content="".join(self.content), last_seq=self.seq, **self._served())


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost": usage.cost}
