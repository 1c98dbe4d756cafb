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
from sqlalchemy import inspect, select, update

from bestchat import plugins
from bestchat.context import tokens
from bestchat.context.assemble import Prompt
from bestchat.errors import DomainError
from bestchat.extensions import db
from bestchat.models import Conversation, Group, GroupMember, Message, UsageLog
from bestchat.models.base import utcnow
from bestchat.models.message_status import MessageStatus
from bestchat.providers import registry
from bestchat.providers.base import Finish, ProviderError, TextDelta, ToolCall, Usage
from bestchat.services import groups, pricing, titles, tool_rules, usage_events
from bestchat.services.client_tools import FINISH_REASON, client_tools_of, tool_calls_part
from bestchat.services.conversations import announce
from bestchat.services.tool_loop import Paused, RoundUsage, ToolLoop, close_open_calls
from bestchat.streaming.frame_writer import CANCEL, END, STOPPED, Live, running
from bestchat.store import Claimed, get_store
from bestchat.text import storable

log = logging.getLogger(__name__)

_STREAMING = (MessageStatus.STREAMING,)


class _Stopped(Exception):
    """The message left ``streaming`` under the job (reaped, cancelled before start, deleted)."""


# How a generation ended besides END/CANCEL/STOPPED: a tool call waits for a person.
PAUSED = "paused"


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
        self.finish_reason: str | None = None
        self.target: registry.Target | None = None
        self.prompt: list[dict[str, Any]] = []
        self.context: Prompt | None = None
        self.store = get_store(app)
        self.tools: ToolLoop | None = None
        self.rounds: list[RoundUsage] = []  # this job's model rounds
        self.logged: list[tuple[UsageLog, int, Decimal | None]] = []  # rows added, not yet reported
        # The tools an OpenAI-compatible client offers and runs itself, and the model's calls.
        self.client_tools = client_tools_of(start.parts)
        self.client_calls: list[ToolCall] = []

    @property
    def seq(self) -> int:
        return self.live.seq

    def run(self) -> None:
        try:
            targets, options = self._prepare()
            outcome = self._stream(targets, options)
            if outcome is CANCEL:
                self._end_cancelled()
            elif outcome is not PAUSED:
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
        options = dict(start.settings)
        # What the user's groups allow, read once (its admin check only when they restrict).
        allowed = groups.access(start.user_id, admin=lambda: registry.user_is_admin(start.user_id))
        targets = registry.resolve_targets(start.user_id, start.model, start.configs, access=allowed)
        offered = [tool for tool in tool_rules.offered_tools(start.disabled_tools) if allowed.allows_tool(tool.name)] \
            if targets and targets[0].provider.supports_tools and self.client_tools is None else []
        if offered or any(part.get("type") == "tool_round" for part in start.parts):
            self.tools = ToolLoop(self.app, message_id=start.message_id, conversation_id=start.conversation_id,
                                  user_id=start.user_id, tools=offered, parts=start.parts,
                                  emit=lambda build: self.running.emit(self.live, build))
        schemas = self.client_tools[0] if self.client_tools else (self.tools.schemas if self.tools else None)
        self.context = Prompt(self.app, start, targets[0], options, schemas,
                              lambda prompt, most: self._summarize(targets, options, prompt, most))
        self.prompt = self.context.messages()
        if plugins.implemented("before_generate"):  # (the ORM conversation only when needed)
            conversation = db.session.get(Conversation, start.conversation_id)
            self.prompt = plugins.run_before_generate(conversation, self.prompt)
        db.session.commit()  # ends the read transaction: no connection held while streaming
        return targets, options

    def _summarize(self, targets: list[registry.Target], options: dict[str, Any],
                   prompt: list[dict[str, Any]], most: int) -> str:
        """A summary's text from the answer's model (no tools), its usage noted as round -1."""
        usage = RoundUsage(round=-1)
        text: list[str] = []
        for target, event in registry.stream_with_failover(targets, prompt, {**options, "max_tokens": most}):
            usage.target = target
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Usage):
                usage.usage = event
        if usage.usage is None:
            usage.usage = _estimate(prompt, "".join(text))
        self.rounds.append(usage)
        return storable("".join(text))

    def _stream(self, targets: list[registry.Target], options: dict[str, Any]) -> Any:
        """Stream until settled; how it ended (END, CANCEL or PAUSED). Whatever was received is
        published."""
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
        if live.outcome is PAUSED:
            return PAUSED
        self.running.flush(live)
        if isinstance(live.outcome, BaseException):
            raise live.outcome
        return live.outcome

    def _check_cancelled(self) -> None:
        """:meth:`Running.check_cancelled` in its own greenlet; its failure fails the generation."""
        try:
            self.running.check_cancelled(self.live)
        except Exception as error:  # noqa: BLE001 - fails the generation, as it would inline
            self.live.settle(error)

    def _produce(self, targets: list[registry.Target], options: dict[str, Any]) -> None:
        """The provider greenlet: the model's rounds (one, or one per tool round), text to the
        frame writer, the rest noted; settles at the end."""
        live = self.live
        with self.app.app_context():
            try:
                tools = self.tools
                if tools is not None and tools.rounds:  # resumed after a tool approval
                    if self._next_step(tools.resume(self._round(tools.next_round - 1)), live):
                        return
                while True:
                    text, calls = self._model_round(targets, options)
                    if calls and self.client_tools is not None:
                        self.client_calls = calls  # returned to the client, which runs them
                        self.finish_reason = FINISH_REASON
                    if not calls or tools is None:
                        break
                    if self._next_step(tools.run_round(text, calls, self.rounds[-1]), live):
                        return
                live.settle(END)
            except Exception as error:  # the job's greenlet ends the message
                live.settle(error)

    def _round(self, number: int) -> RoundUsage:
        """A new usage record for round ``number`` of the answer."""
        self.rounds.append(RoundUsage(round=number))
        return self.rounds[-1]

    def _model_round(self, targets: list[registry.Target], options: dict[str, Any]) -> tuple[str, list[ToolCall]]:
        """Stream one model round: its text (published as it comes) and the calls it asks for."""
        live, received = self.live, self.running.received
        usage = self._round(self.tools.next_round if self.tools is not None else 0)
        tools, tool_choice = self.client_tools or (self.tools.schemas if self.tools is not None else None, None)
        text: list[str] = []
        calls: list[ToolCall] = []
        for target, event in registry.stream_with_failover(targets, self.prompt, options, tools=tools,
                                                           tool_choice=tool_choice):
            live.last_event = time.monotonic()
            self.target = usage.target = target
            if isinstance(event, TextDelta):
                if event.text:
                    piece = storable(event.text)
                    text.append(piece)
                    received(live, piece)  # streamed as stored
            elif isinstance(event, ToolCall):
                calls.append(event)
            elif isinstance(event, Usage):
                usage.usage = event
            elif isinstance(event, Finish):
                self.finish_reason = event.reason
        if usage.usage is None:
            usage.usage = _estimate(self.prompt, "".join(text))
        return "".join(text), calls

    def _next_step(self, step: list[dict[str, Any]] | Paused, live: Live) -> bool:
        """Carry a tool round's results into the prompt; True when the generation paused."""
        if isinstance(step, Paused):
            self._pause(step)
            live.settle(PAUSED)
            return True
        self.prompt = self.context.extend(self.prompt, step)
        return False

    def _pause(self, paused: Paused) -> None:
        """Save the answer ``waiting`` with its text and rounds; its job ends here."""
        self.running.flush(self.live)
        saved = db.session.execute(
            update(Message).where(Message.id == self.message_id, Message.status == MessageStatus.STREAMING.value)
            .values(status=MessageStatus.WAITING.value, content=self._content(), last_seq=self.seq,
                    parts=paused.parts, updated_at=utcnow(), **self._meta())
            .execution_options(synchronize_session=False)).rowcount
        if not saved:
            db.session.rollback()
            raise _Stopped()
        message = db.session.get(Message, self.message_id)
        self._log_usage(message)
        db.session.commit()
        self._usage_committed()
        from bestchat.services.tools import resume_if_decided  # noqa: PLC0415 - a decision may have come already

        resume_if_decided(self.message_id)

    def _content(self) -> str:
        return self.live.text()

    # ---- endings --------------------------------------------------------------------------

    def _served(self) -> dict[str, Any]:
        if self.target is None:
            return {}
        return {"provider": self.target.provider_name, "model": self.target.model_id}

    def _usage(self) -> Usage:
        """This job's tokens, every round summed."""
        if not self.rounds:
            return _estimate(self.prompt, self._content())
        usages = [r.usage or Usage(0, 0) for r in self.rounds]
        costs = [u.cost for u in usages if u.cost is not None]
        return Usage(prompt_tokens=sum(u.prompt_tokens for u in usages),
                     completion_tokens=sum(u.completion_tokens for u in usages),
                     cost=sum(costs) if costs else None,
                     cached_tokens=sum(u.cached_tokens for u in usages))

    def _log_usage(self, message: Message) -> None:
        """One usage row per model round of this job: tokens (cached ones too), its cost (None
        when no price is known, never $0) and the price's source, the user's group, and its
        tools' run time. :meth:`_usage_committed` reports them once the caller commits."""
        rounds = [(r, r.target or self.target) for r in self.rounds]
        rounds = [(r, target) for r, target in rounds if target is not None]
        if not rounds:
            return
        group_id = _first_group_id(self.start.user_id)
        for round_, target in rounds:
            usage = round_.usage or Usage(0, 0)
            cost, source = pricing.round_cost(target.provider_name, target.model, usage, provider=target.provider)
            row = UsageLog(
                user_id=self.start.user_id, conversation_id=message.conversation_id, message_id=message.id,
                group_id=group_id, provider=target.provider_name, model=target.model, round=round_.round,
                tool_ms=round_.tool_ms, prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
                cost=cost, price_source=source)
            db.session.add(row)
            self.logged.append((row, usage.prompt_tokens + usage.completion_tokens, cost))

    def _usage_committed(self) -> None:
        """Tell :mod:`bestchat.services.usage_events` of the usage rows the last commit saved
        (a rolled-back row has no identity and is left out), each once."""
        saved = [(tokens, cost) for row, tokens, cost in self.logged if inspect(row).has_identity]
        self.logged = []
        if saved:
            usage_events.usage_recorded(self.start.user_id, sum(tokens for tokens, _ in saved),
                                        sum((cost for _, cost in saved if cost is not None), Decimal(0)))

    def _end_complete(self) -> None:
        usage = self._usage()
        renamed: list[Any] = []

        def on_finished(message: Message) -> None:
            self._log_usage(message)
            plugins.run_after_generate(message)
            titled = self.start.title != titles.DEFAULT_TITLE  # (no branch to read then)
            conversation = None if titled else titles.auto_title(message)
            if conversation is not None:
                renamed.append(conversation)

        message = self.store.finish(
            self.message_id, MessageStatus.COMPLETE, from_statuses=_STREAMING, usage=_usage_json(usage),
            finish_reason=self.finish_reason, on_finished=on_finished, content=self._content(),
            last_seq=self.seq, token_count=self._token_count(), **self._meta(), **self._parts(), **self._served())
        self._usage_committed()
        if message is None:
            raise _Stopped()
        for conversation in renamed:
            announce(conversation)

    def _end_cancelled(self) -> None:
        usage = self._usage()
        self.store.finish(
            self.message_id, MessageStatus.CANCELLED, from_statuses=_STREAMING, usage=_usage_json(usage),
            on_finished=self._on_ended, content=self._content(), last_seq=self.seq,
            token_count=self._token_count(), **self._meta(), **self._parts(), **self._served())
        self._usage_committed()

    def _end_failed(self, code: str, text: str) -> None:
        db.session.rollback()
        self.store.finish(
            self.message_id, MessageStatus.FAILED, from_statuses=_STREAMING, error=storable(text),
            error_code=code, on_finished=self._on_ended, content=self._content(), last_seq=self.seq,
            **self._meta(), **self._parts(), **self._served())
        self._usage_committed()

    def _on_ended(self, message: Message) -> None:
        """A cancelled or failed answer: its usage so far; calls left open never finish."""
        self._log_usage(message)
        if self.tools is not None:
            close_open_calls(self.message_id)

    def _token_count(self) -> int:
        """The answer's tokens as a later prompt will count them (counted once, here)."""
        encoding = self.context.budget.encoding if self.context is not None else None
        return tokens.message_tokens(self._content(), encoding)

    def _meta(self) -> dict[str, Any]:
        """The answer's ``meta``: how its prompt was fitted (when it got that far)."""
        if self.context is None or not self.context.meta:
            return {}
        return {"meta": {"context": self.context.meta}}

    def _parts(self) -> dict[str, Any]:
        """The answer's ``parts`` when it made tool rounds (kept as its record), or with the
        calls an OpenAI-compatible client is to run."""
        if self.client_calls:
            return {"parts": [*self.start.parts, tool_calls_part(self.client_calls)]}
        return {"parts": self.tools.all_parts()} if self.tools is not None and self.tools.rounds else {}


def _first_group_id(user_id: uuid.UUID) -> uuid.UUID | None:
    """The group a user's usage is counted under: the first of their groups by name."""
    return db.session.scalar(select(Group.id).join(GroupMember, GroupMember.group_id == Group.id)
                             .where(GroupMember.user_id == user_id).order_by(Group.name, Group.id).limit(1))


def _estimate(prompt: list[dict[str, Any]], text: str) -> Usage:
    """Tokens guessed at four characters each, for a provider that reports none."""
    prompt_chars = sum(len(str(m.get("content") or "")) for m in prompt)
    return Usage(prompt_tokens=math.ceil(prompt_chars / 4), completion_tokens=math.ceil(len(text) / 4))


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "cost": usage.cost}
