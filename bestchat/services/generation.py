"""One generation job: write an assistant message by streaming from its provider.

:func:`generate` is what the ``bestchat.generate`` task runs (on a Celery worker, or on the
in-process pool in embedded mode). It claims the message through the message store
(:mod:`bestchat.store`: ``pending``/``queued`` -> ``streaming``), builds the prompt, runs the
``before_generate`` filters, resolves the provider targets and streams with failover. The
provider runs in its own greenlet and does nothing per event but make the text storable
(:func:`bestchat.text.storable`: no NUL, no lone surrogate, so what is streamed is what is
saved) and hand it to this process's frame writer (:class:`bestchat.streaming.frame_writer.Running`),
whose shared greenlets publish frames (gap-free ``seq``), save the partial content at least
every ``STREAM_SAVE_INTERVAL`` seconds (the heartbeat the reaper watches), end idle streams and
route cancellations. The job's own greenlet sleeps until the generation is *settled* (provider
done or failed, cancel, message gone), then publishes what is left and ends the message through
the store: ``complete`` with its content, a usage row and the ``after_generate`` filters, or
``failed``/``cancelled``.

Every write is conditional on the message still being ``streaming``: if the reaper or a
delete got there first, the job stops quietly.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from decimal import Decimal
from typing import Any

import gevent
from flask import Flask, current_app

from bestchat import plugins
from bestchat.errors import DomainError
from bestchat.extensions import db
from bestchat.models import Conversation, Message, UsageLog
from bestchat.models.message_status import MessageStatus
from bestchat.providers import registry
from bestchat.providers.base import Finish, ProviderError, TextDelta, ToolCall, Usage
from bestchat.services import titles
from bestchat.services.client_tools import FINISH_REASON, client_tools_of, tool_calls_part
from bestchat.services.conversations import announce
from bestchat.streaming.frame_writer import CANCEL, END, STOPPED, Live, running
from bestchat.store import Claimed, get_store
from bestchat.text import storable

log = logging.getLogger(__name__)

_STREAMING = (MessageStatus.STREAMING,)


class _Stopped(Exception):
    """The message left ``streaming`` under the job (reaped, cancelled before start, deleted)."""


def generate(message_id: str) -> None:
    """Generate the answer ``message_id``; safe to run twice (a redelivered job after its worker
    died finds the message ``streaming`` and marks it ``interrupted`` rather than starting over)."""
    key = uuid.UUID(message_id)
    store = get_store()
    start = store.claim(key)
    if start is None:
        message = db.session.get(Message, key)
        if message is not None and message.status == MessageStatus.STREAMING:
            log.warning("generation of %s was redelivered; marking it interrupted", message_id)
            store.interrupt(message)
        return
    Generation(current_app._get_current_object(), start).run()


class Generation:
    """The state of one running generation. Holds ids and plain values only, so no database
    connection stays checked out between its short transactions."""

    def __init__(self, app: Flask, start: Claimed):
        self.app = app
        self.start = start
        self.running = running(app)
        self.live = Live(start.message_id, str(start.conversation_id), start.last_seq, start.content)
        self.message_id = start.message_id
        self.key = str(start.message_id)
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.target: registry.Target | None = None
        self.prompt: list[dict[str, Any]] = []
        self.store = get_store(app)
        # The tools an OpenAI-compatible client offers and runs itself, and the model's calls.
        self.client_tools = client_tools_of(start.parts)
        self.client_calls: list[ToolCall] = []

    @property
    def seq(self) -> int:
        return self.live.seq

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
        except (ProviderError, DomainError) as error:
            self._end_failed(error.code, error.message)
        except Exception:
            log.exception("generation of %s failed", self.key)
            self._end_failed("internal_error", "the generation failed unexpectedly")
        finally:
            self.running.remove(self.live)

    # ---- steps ----------------------------------------------------------------------------

    def _prepare(self) -> tuple[list[registry.Target], dict[str, Any]]:
        start = self.start
        system = [{"role": "system", "content": start.system_prompt}] if start.system_prompt else []
        self.prompt = system + start.history
        if plugins.implemented("before_generate"):  # (the ORM conversation only when needed)
            conversation = db.session.get(Conversation, start.conversation_id)
            self.prompt = plugins.run_before_generate(conversation, self.prompt)
            db.session.commit()  # ends the read transaction: no connection held while streaming
        targets = registry.resolve_targets(start.user_id, start.model, start.configs)
        return targets, dict(start.settings)

    def _stream(self, targets: list[registry.Target], options: dict[str, Any]) -> bool:
        """Stream until settled; True if cancelled. Whatever was received is published."""
        live = self.live
        self.running.add(live)
        # A cancel that came before the add: found at once when this process knows (then the
        # producer never starts), else asked of the bus while the producer sends its request.
        checker = gevent.spawn(self._check_cancelled)
        producer = gevent.spawn(self._produce, targets, options)
        try:
            live.settled.wait()
        finally:
            checker.kill(block=False)
            producer.kill(block=True, timeout=5)
        if live.outcome is STOPPED:
            raise _Stopped()
        self.running.flush(live)
        if isinstance(live.outcome, BaseException):
            raise live.outcome
        return live.outcome is CANCEL

    def _check_cancelled(self) -> None:
        """:meth:`Running.check_cancelled` in its own greenlet; its failure fails the generation."""
        try:
            self.running.check_cancelled(self.live)
        except Exception as error:  # noqa: BLE001 - fails the generation, as it would inline
            self.live.settle(error)

    def _produce(self, targets: list[registry.Target], options: dict[str, Any]) -> None:
        """The provider greenlet: text to the frame writer, the rest noted; settles at the end."""
        live, received = self.live, self.running.received
        with self.app.app_context():
            try:
                tools, tool_choice = self.client_tools or (None, None)
                for target, event in registry.stream_with_failover(targets, self.prompt, options,
                                                                   tools=tools, tool_choice=tool_choice):
                    live.last_event = time.monotonic()
                    self.target = target
                    if isinstance(event, TextDelta):
                        if event.text:
                            received(live, storable(event.text))  # streamed as stored
                    elif isinstance(event, Usage):
                        self.usage = event
                    elif isinstance(event, Finish):
                        self.finish_reason = event.reason
                    elif isinstance(event, ToolCall) and self.client_tools is not None:
                        self.client_calls.append(event)
                    else:
                        log.info("generation of %s: ignoring %s (not supported yet)",
                                 self.key, type(event).__name__)
                live.settle(END)
            except Exception as error:  # the job's greenlet ends the message
                live.settle(error)

    def _content(self) -> str:
        return self.live.text()

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
                     completion_tokens=math.ceil(len(self._content()) / 4))

    def _log_usage(self, message: Message, usage: Usage) -> None:
        if self.target is None:
            return
        db.session.add(UsageLog(
            user_id=self.start.user_id, conversation_id=message.conversation_id, message_id=message.id,
            provider=self.target.provider_name, model=self.target.model,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            cost=Decimal(str(usage.cost or 0))))

    def _end_complete(self) -> None:
        usage = self._usage()
        renamed: list[Any] = []
        calls = {}
        if self.client_calls:  # returned to the client, which runs them
            calls = {"parts": [*self.start.parts, tool_calls_part(self.client_calls)]}
            self.finish_reason = FINISH_REASON

        def on_finished(message: Message) -> None:
            self._log_usage(message, usage)
            plugins.run_after_generate(message)
            titled = self.start.title != titles.DEFAULT_TITLE  # (no branch to read then)
            conversation = None if titled else titles.auto_title(message)
            if conversation is not None:
                renamed.append(conversation)

        message = self.store.finish(
            self.message_id, MessageStatus.COMPLETE, from_statuses=_STREAMING, usage=_usage_json(usage),
            finish_reason=self.finish_reason, on_finished=on_finished, content=self._content(),
            last_seq=self.seq, token_count=usage.completion_tokens, **calls, **self._served())
        if message is None:
            raise _Stopped()
        for conversation in renamed:
            announce(conversation)

    def _end_cancelled(self) -> None:
        usage = self._usage()
        self.store.finish(
            self.message_id, MessageStatus.CANCELLED, from_statuses=_STREAMING, usage=_usage_json(usage),
            on_finished=lambda message: self._log_usage(message, usage),
            content=self._content(), last_seq=self.seq, token_count=usage.completion_tokens,
            **self._served())

    def _end_failed(self, code: str, text: str) -> None:
        db.session.rollback()
        self.store.finish(
            self.message_id, MessageStatus.FAILED, from_statuses=_STREAMING, error=storable(text),
            error_code=code, content=self._content(), last_seq=self.seq, **self._served())


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost": usage.cost}
