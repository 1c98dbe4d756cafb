"""Conversations and their messages, for one user: the ConversationManager.

Everything a client can do to a chat goes through here (REST, WebSocket, ``/v1`` and the web
UI are thin adapters): create, list, search, rename and delete conversations; send a message;
start a conversation from a whole transcript (the OpenAI-compatible API); cancel; regenerate;
edit (a new branch). Ownership is checked here: another user's ids are simply not found.

This module holds the rules: what content is allowed, which parent a new message follows,
which model an answer uses, which error a refused request gets. The statements belong to the
message store (:mod:`bestchat.store`); starting a generation belongs to the dispatcher
(:mod:`bestchat.dispatch`).

A send, an edit, a regenerate and a transcript take one path: the answer's admission starts
(:mod:`bestchat.services.admission`: ``pending``, or ``queued`` while every generation slot
is busy, or refused with ``overloaded`` when the queue is full) while the store stores the
exchange (the new messages and the answer, checked and written together; ids and timestamps
are made here, so nothing is read back); then the ``message.created`` events are announced
and the answer's generation started, in that order.

A model the user's groups do not allow is refused before anything is stored
(:class:`ModelNotAllowed`, :mod:`bestchat.services.groups`): a model the request names is
checked first; a conversation's own model (inherited by the answer in the store's statement)
is checked when the store hands the answer over for admission, so it costs no read of its own.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any, Callable, NamedTuple, Sequence

from flask import current_app
from sqlalchemy import and_, exists, func, or_, select

from bestchat.context import tokens
from bestchat.context.choice import check_strategy_names
from bestchat.context.send_check import check_fits, check_send, message_cost
from bestchat.dispatch import get_dispatcher
from bestchat.errors import AccountDisabled, Conflict, DomainError, Invalid, NotFound, Unavailable
from bestchat.extensions import db
from bestchat.models import ContextOptimization, Conversation, FileUpload, Message, User
from bestchat.models.base import utcnow
from bestchat.models.message_status import ACTIVE, CLAIMABLE, MessageStatus
from bestchat.providers.registry import check_settings
from bestchat.services.tool_loop import close_open_calls
from bestchat.services.tool_rules import check_tool_names
from bestchat.serializers import conversation_json
from bestchat.services import groups
from bestchat.services.admission import Admitting, get_admission, release_quietly
from bestchat.services.titles import DEFAULT_TITLE, short_title
from bestchat.store import Exchange, Found, get_store
from bestchat.streaming import events, get_bus

log = logging.getLogger(__name__)

# The roles a transcript may end with: a question, or a tool's result for the answer before it.
TRANSCRIPT_ENDS = ("user", "tool")
UPDATABLE = ("title", "model", "system_prompt", "settings", "disabled_tools", "context_strategy")
# Answers no job is running: a cancel ends them at once (a running one is stopped by its job).
NOT_RUNNING = CLAIMABLE | {MessageStatus.WAITING}
# Messages written together get created_at one tick apart, so the newest is always the last.
TICK = timedelta(microseconds=1)


class TranscriptMessage(NamedTuple):
    """One message of a transcript: its role (``user``, ``assistant`` or ``tool``), its text
    and its parts (tool calls and results: :mod:`bestchat.services.client_tools`)."""

    role: str
    content: str
    parts: Sequence[dict[str, Any]] = ()


class ConversationManager:
    """The chat operations of ``user``."""

    def __init__(self, user: User):
        self.user = user

    # ---- conversations --------------------------------------------------------------------

    def create(self, *, title: str | None = None, model: str | None = None,
               system_prompt: str | None = None, settings: dict[str, Any] | None = None,
               disabled_tools: list[str] | None = None,
               context_strategy: str | list[str] | None = None) -> Conversation:
        """A new conversation; its ``settings`` are checked against the providers' options
        first, ``disabled_tools`` against the installed tools (:class:`Invalid` naming the
        setting, nothing stored)."""
        check_settings(settings or {})
        conversation = Conversation(user_id=self.user.id, title=title or DEFAULT_TITLE, model=model,
                                    system_prompt=system_prompt, settings=settings or {},
                                    disabled_tools=check_tool_names(disabled_tools or []),
                                    context_strategy=check_strategy_names(context_strategy))
        db.session.add(conversation)
        db.session.commit()
        return conversation

    def list_conversations(self, *, query: str | None = None, limit: int = 50,
             offset: int = 0) -> tuple[list[Conversation], bool]:
        """The user's conversations, most recently active first; with ``query``, only those whose
        title or any message contains it (case-insensitive). Returns (page, has_more)."""
        statement = select(Conversation).where(Conversation.user_id == self.user.id)
        if query:
            needle = query.lower()
            in_messages = exists().where(
                Message.conversation_id == Conversation.id,
                func.lower(Message.content).contains(needle, autoescape=True),
            )
            statement = statement.where(
                or_(func.lower(Conversation.title).contains(needle, autoescape=True), in_messages)
            )
        statement = statement.order_by(Conversation.updated_at.desc(), Conversation.id)
        rows = list(db.session.scalars(statement.offset(offset).limit(limit + 1)))
        return rows[:limit], len(rows) > limit

    def get(self, conversation_id: uuid.UUID) -> Conversation:
        conversation = db.session.get(Conversation, conversation_id)
        if conversation is None or conversation.user_id != self.user.id:
            raise NotFound("conversation")
        return conversation

    def update(self, conversation_id: uuid.UUID, **changes: Any) -> Conversation:
        """Change any of title, model, system_prompt, settings (rename = change the title);
        announced to the conversation's clients as ``conversation.updated``. New ``settings``
        are checked first (:class:`Invalid` naming the setting, nothing changed)."""
        conversation = self.get(conversation_id)
        for name in changes:
            if name not in UPDATABLE:
                raise ValueError(f"not an updatable field: {name}")
        check_settings(changes.get("settings") or {})
        if "disabled_tools" in changes:
            changes["disabled_tools"] = check_tool_names(changes["disabled_tools"] or [])
        if "context_strategy" in changes:
            changes["context_strategy"] = check_strategy_names(changes["context_strategy"])
        for name, value in changes.items():
            setattr(conversation, name, value)
        conversation.title = conversation.title or DEFAULT_TITLE
        conversation.settings = conversation.settings or {}
        conversation.disabled_tools = conversation.disabled_tools or []
        db.session.commit()
        announce(conversation)
        return conversation

    def delete(self, conversation_id: uuid.UUID) -> None:
        """Delete it with its messages; running generations are asked to stop."""
        conversation = self.get(conversation_id)
        active = db.session.execute(select(Message.id, Message.status).where(
            Message.conversation_id == conversation.id, Message.status.in_(ACTIVE))).all()
        for message_id, _status in active:
            get_bus().request_cancel(str(message_id))
        db.session.delete(conversation)
        db.session.commit()
        release_quietly(*(str(message_id) for message_id, status in active if status != MessageStatus.STREAMING))
        get_bus().broadcast(str(conversation_id), events.conversation_deleted(str(conversation_id)))

    # ---- messages -------------------------------------------------------------------------

    def message(self, message_id: uuid.UUID) -> Message:
        message = db.session.get(Message, message_id)
        if message is None or message.conversation.user_id != self.user.id:
            raise NotFound("message")
        return message

    def messages(self, conversation_id: uuid.UUID, *, limit: int = 50,
                 before: uuid.UUID | None = None) -> dict[str, Any]:
        """One page of messages, newest page first (each page in chronological order), every
        branch included. Returns ``{messages, siblings, leaf_id, has_more, summaries}``: ``siblings``
        maps each message id to the ids of the messages sharing its parent (itself included),
        oldest first; ``leaf_id`` is the newest message, the tip of the active branch."""
        conversation = self.get(conversation_id)
        statement = select(Message).where(Message.conversation_id == conversation.id)
        if before is not None:
            anchor = self.message(before)
            statement = statement.where(or_(
                Message.created_at < anchor.created_at,
                and_(Message.created_at == anchor.created_at, Message.id < anchor.id),
            ))
        rows = list(db.session.scalars(
            statement.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)))
        page = list(reversed(rows[:limit]))
        leaf = self._leaf(conversation.id)
        return {"messages": page, "siblings": self._siblings(conversation.id, page),
                "leaf_id": leaf.id if leaf else None, "has_more": len(rows) > limit,
                "summaries": list(db.session.scalars(
                    select(ContextOptimization).where(ContextOptimization.conversation_id == conversation.id,
                                                      ContextOptimization.summary.is_not(None))
                    .order_by(ContextOptimization.created_at)))}

    def send(self, conversation_id: uuid.UUID, content: str, *, model: str | None = None,
             parent_id: uuid.UUID | None = None, attachments: list[str] | None = None,
             client_id: str | None = None,
             before_announce: Callable[[], None] | None = None) -> tuple[Message, Message]:
        """Add a user message (after ``parent_id``, default the newest message) and start its
        answer. Returns (user message, pending or queued assistant message).

        A disabled account is refused here (:class:`AccountDisabled`, nothing stored), in the
        same statement as the write (on SQLite, the same transaction), so an adapter needs no
        account check of its own before a send. ``before_announce`` runs once the exchange is stored
        (so once ownership is established) and before its events are announced: a WebSocket
        follows the conversation there."""
        _check_content(content)
        allowed = self._allowed(model)
        uploads = self._uploads(attachments or [])
        token_count = tokens.message_tokens(content)
        check_send(self.user.id, conversation_id, model, message_cost(token_count, uploads))
        with self._admitting() as admitting:
            question = _new_message(conversation_id=conversation_id, parent_id=parent_id, role="user",
                                    content=content, parts=_file_parts(uploads), status=MessageStatus.COMPLETE,
                                    token_count=token_count, created_at=utcnow())
            answer = _answer(admitting, question, model)
            self._store(Exchange(self.user.id, [question, answer], after_newest=parent_id is None), admitting,
                        inherited=None if model else allowed)
            _announce_and_start(answer, [question, answer], client_id, before_announce)
            return question, answer

    def start_from_transcript(self, transcript: list[TranscriptMessage | tuple[str, str]], *,
                              model: str | None = None, system_prompt: str | None = None,
                              settings: dict[str, Any] | None = None,
                              answer_parts: list[dict[str, Any]] | None = None) -> Message:
        """A new conversation from a whole transcript at once (how OpenAI-style clients talk):
        every message but the last stored as a complete message, the last (a user message, or
        the ``tool`` message with a tool's result for the answer before it) sent as usual, all
        together. Messages are :class:`TranscriptMessage` (or ``(role, content)`` pairs); the
        answer gets ``answer_parts``. Titled after the first user message. Its ``settings`` are
        checked against the providers' options first, as :meth:`create` checks them. Returns the
        pending (or queued) answer."""
        check_settings(settings or {})
        said = [TranscriptMessage(*message) for message in transcript]
        last = said[-1]
        if last.role not in TRANSCRIPT_ENDS:
            raise ValueError("a transcript must end with a user or a tool message")
        if last.role == "user":
            _check_content(last.content)
        else:
            _check_length(last.content)
        self._allowed(model or current_app.config["DEFAULT_MODEL"], param="model")
        first = next((message.content for message in said if message.role == "user"), "")
        counts = [tokens.message_tokens(message.content) for message in said]
        newest_user = max((index for index, message in enumerate(said) if message.role == "user"), default=0)
        check_fits(self.user.id, model, sum(counts[newest_user:]), system_prompt=system_prompt,
                   settings=settings or {}, disabled_tools=[])
        with self._admitting() as admitting:
            now = utcnow()
            conversation = Conversation(id=uuid.uuid4(), user_id=self.user.id, title=short_title(first),
                                        provider=None, model=model, system_prompt=system_prompt,
                                        settings=settings or {}, created_at=now,
                                        updated_at=now + (len(said) - 1) * TICK)
            messages: list[Message] = []
            parent_id: uuid.UUID | None = None
            for index, message in enumerate(said):
                stored = _new_message(conversation_id=conversation.id, parent_id=parent_id, role=message.role,
                                      content=message.content, parts=list(message.parts),
                                      token_count=counts[index], status=MessageStatus.COMPLETE,
                                      created_at=now + index * TICK)
                messages.append(stored)
                parent_id = stored.id
            question = messages[-1]
            answer = _answer(admitting, question, model)
            answer.parts = list(answer_parts or [])
            self._store(Exchange(self.user.id, [*messages, answer], conversation=conversation), admitting)
            _announce_and_start(answer, [question, answer])
            return answer

    def edit(self, message_id: uuid.UUID, content: str, *,
             model: str | None = None) -> tuple[Message, Message]:
        """A new version of a user message: a sibling branch with its own answer; the old
        branch stays as it was."""
        original = self.message(message_id)
        if original.role != "user":
            raise Conflict("not_editable", "only a user message can be edited")
        _check_content(content)
        allowed = self._allowed(model)
        token_count = tokens.message_tokens(content)
        check_send(self.user.id, original.conversation_id, model,
                   message_cost(token_count, self._uploads(_upload_ids(original.parts), missing_ok=True)))
        with self._admitting() as admitting:
            question = _new_message(conversation_id=original.conversation_id, parent_id=original.parent_id,
                                    role="user", content=content, parts=list(original.parts or []),
                                    token_count=token_count, status=MessageStatus.COMPLETE, created_at=utcnow())
            answer = _answer(admitting, question, model)
            self._store(Exchange(self.user.id, [question, answer]), admitting, inherited=None if model else allowed)
            _announce_and_start(answer, [question, answer])
            return question, answer

    def regenerate(self, message_id: uuid.UUID, *, model: str | None = None) -> Message:
        """A new answer to the same user message, as a sibling of ``message_id`` (with its
        model unless another is given)."""
        original = self.message(message_id)
        if original.role != "assistant":
            raise Conflict("not_regenerable", "only an assistant message can be regenerated")
        if original.status in ACTIVE:
            raise Conflict("generation_in_progress", "this answer is still being generated")
        self._allowed(model or original.model or current_app.config["DEFAULT_MODEL"])
        with self._admitting() as admitting:
            answer = _new_message(id=uuid.UUID(admitting.message_id), conversation_id=original.conversation_id,
                                  parent_id=original.parent_id, role="assistant", status=MessageStatus.PENDING,
                                  model=model or original.model, created_at=utcnow())
            self._store(Exchange(self.user.id, [answer], inherit_model=False), admitting)
            _announce_and_start(answer, [answer])
            return answer

    def cancel(self, message_id: uuid.UUID) -> Message:
        """Stop an answer: at once if its job has not started, else within one chunk."""
        message = self.message(message_id)
        if message.role != "assistant":
            raise Conflict("not_cancellable", "only an assistant message can be cancelled")
        if message.status in ACTIVE:
            get_bus().request_cancel(str(message.id))
            if get_store().finish(message.id, MessageStatus.CANCELLED, from_statuses=NOT_RUNNING,
                                  on_finished=lambda ended: close_open_calls(ended.id)):
                release_quietly(str(message.id))  # its job will find it cancelled and do nothing
        db.session.expire_all()
        return self.message(message_id)

    # ---- helpers --------------------------------------------------------------------------

    def _admitting(self) -> Admitting:
        """A new answer's admission, started now; given back on leaving its ``with`` block
        unless the answer took it (:class:`Admitting`)."""
        return get_admission().start(str(uuid.uuid4()), str(self.user.id))

    def _allowed(self, model: str | None, *, param: str | None = None) -> groups.Access:
        """What the user may use; a ``model`` given is checked now (:class:`ModelNotAllowed`)."""
        allowed = groups.access_for(self.user)
        if model:
            groups.check_model(self.user.id, allowed, model, param=param)
        return allowed

    def _store(self, exchange: Exchange, admitting: Admitting, *, inherited: groups.Access | None = None) -> Found:
        """Store ``exchange`` with its answer admitted by ``admitting``; the refusal when the
        store found a reason not to (nothing stored). A failure after the answer was admitted
        gives its admission back. With ``inherited``, the model the answer inherits from the
        conversation (or the default model) is checked against it before the admission."""
        admitted: list[str] = []

        def admit() -> str:
            if inherited is not None and inherited.models is not None:
                groups.check_model(self.user.id, inherited,
                                   exchange.answer.model or current_app.config["DEFAULT_MODEL"])
            admitted.append(admitting.status())
            return admitted[-1]

        try:
            found = get_store().add_exchange(exchange, admit)
        except BaseException:
            if admitted:
                release_quietly(str(exchange.answer.id))
            raise
        if not found.stored:
            raise self._refusal(found)
        return found

    def _refusal(self, found: Found) -> DomainError:
        """Why an exchange was not stored, from what the store found."""
        if found.owner_id != self.user.id:
            return NotFound("conversation")
        if found.disabled:
            return AccountDisabled()
        if not found.parent_found:
            return NotFound("message")
        return Conflict("generation_in_progress", "wait for the current answer to finish (or cancel it) first")

    def _leaf(self, conversation_id: uuid.UUID) -> Message | None:
        return db.session.scalar(
            select(Message).where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc()).limit(1))

    def _siblings(self, conversation_id: uuid.UUID, page: list[Message]) -> dict[str, list[str]]:
        parents = {m.parent_id for m in page}
        condition = Message.parent_id.in_([p for p in parents if p is not None])
        if None in parents:
            condition = or_(condition, Message.parent_id.is_(None))
        rows = db.session.execute(
            select(Message.id, Message.parent_id)
            .where(Message.conversation_id == conversation_id, condition)
            .order_by(Message.created_at, Message.id)).all()
        by_parent: dict[uuid.UUID | None, list[str]] = {}
        for message_id, parent_id in rows:
            by_parent.setdefault(parent_id, []).append(str(message_id))
        return {str(m.id): by_parent.get(m.parent_id, [str(m.id)]) for m in page}

    def _uploads(self, upload_ids: list[str], *, missing_ok: bool = False) -> list[FileUpload]:
        """The user's uploads ``upload_ids`` (attachments), in order; :class:`NotFound` for an
        unknown id or another user's (skipped with ``missing_ok``: a deleted one)."""
        uploads = []
        for raw in upload_ids:
            try:
                upload = db.session.get(FileUpload, uuid.UUID(str(raw)))
            except ValueError:
                upload = None
            if upload is None or upload.user_id != self.user.id:
                if missing_ok:
                    continue
                raise NotFound("upload")
            uploads.append(upload)
        return uploads


def _file_parts(uploads: list[FileUpload]) -> list[dict[str, Any]]:
    """A message's parts for its attached ``uploads`` (each once)."""
    parts, seen = [], set()
    for upload in uploads:
        if upload.id not in seen:
            seen.add(upload.id)
            parts.append({"type": "file", "upload_id": str(upload.id), "name": upload.name, "mime": upload.mime})
    return parts


def _upload_ids(parts: list[Any] | None) -> list[str]:
    return [part["upload_id"] for part in parts or () if isinstance(part, dict) and part.get("type") == "file"
            and part.get("upload_id")]


def _new_message(**values: Any) -> Message:
    """A message with every column set here (ids and timestamps included), so it needs no
    flush before another row can point at it and no read-back after it is stored."""
    fields: dict[str, Any] = {"id": uuid.uuid4(), "parent_id": None, "content": "", "parts": [],
                              "error": None, "error_code": None, "token_count": None,
                              "provider": None, "model": None, "last_seq": 0,
                              "meta": {}}
    fields.update(values)
    fields.setdefault("updated_at", fields["created_at"])
    return Message(**fields)


def _answer(admitting: Admitting, question: Message, model: str | None) -> Message:
    """The answer to ``question``, with the id its admission was started for; ``pending``
    until the store sets the status the admission gives. Without ``model``, the store gives it
    the conversation's."""
    return _new_message(id=uuid.UUID(admitting.message_id), conversation_id=question.conversation_id,
                        parent_id=question.id, role="assistant", status=MessageStatus.PENDING,
                        model=model or None, created_at=question.created_at + TICK)


def _announce_and_start(answer: Message, announced: list[Message], client_id: str | None = None,
                        before_announce: Callable[[], None] | None = None) -> None:
    """``before_announce``, then ``message.created`` for each stored ``announced`` message (the
    answer last) and the answer's generation started (announce first: its chunks follow),
    through the dispatcher. A failure ends the answer ``failed`` (``unavailable``: whether its
    generation started is unknown, and a generation that finds its answer ended does nothing);
    the dispatcher's is :class:`Unavailable`."""
    try:
        if before_announce is not None:
            before_announce()
    except BaseException:
        _end_unstarted(answer)
        raise
    try:
        get_dispatcher().announce_and_start(answer, [events.created(message, client_id) for message in announced])
    except Exception as error:
        log.exception("could not start the generation of %s", answer.id)
        _end_unstarted(answer)
        raise Unavailable("unavailable", "the generation could not be queued; try again") from error


def _end_unstarted(answer: Message) -> None:
    release_quietly(str(answer.id))
    get_store().finish(answer.id, MessageStatus.FAILED, error="the generation could not be queued",
                       error_code="unavailable")


def _check_content(content: str) -> None:
    if not isinstance(content, str) or not content.strip():
        raise Invalid("missing_field", "'content' must not be empty")
    _check_length(content)


def _check_length(content: str) -> None:
    limit = current_app.config["MESSAGE_MAX_CHARS"]
    if len(content) > limit:
        raise Invalid("invalid_field", f"'content' is longer than {limit} characters")


def announce(conversation: Conversation) -> None:
    """Tell the conversation's clients it changed (title, model, ...): ``conversation.updated``."""
    get_bus().broadcast(str(conversation.id), events.conversation_updated(conversation_json(conversation)))
