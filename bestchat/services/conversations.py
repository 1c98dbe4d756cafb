"""Conversations and their messages, for one user: the ConversationManager.

Everything a client can do to a chat goes through here (REST, WebSocket and the web UI are
thin adapters): create, list, search, rename and delete conversations; send a message
(the user message and a ``pending`` assistant message in one transaction, announced on the
bus, then a generation job enqueued); start one from a whole transcript (the
OpenAI-compatible API); cancel; regenerate; edit (a new branch). Ownership is checked here,
once: another user's ids are simply not found.

Every new answer is admitted first (:mod:`bestchat.services.admission`): it starts ``queued``
instead of ``pending`` when every generation slot is busy, and is refused (503
``overloaded``, nothing stored) when the queue is full.

Sending is on the path of every first token, so it is kept to one round trip to the database
and one to Redis: on PostgreSQL a send after the newest message is one prepared statement
(:mod:`bestchat.services.send_statement`: the conversation, its newest message and the
account read, checked and written together, atomic on its own), while the answer's admission
runs (a Redis round trip, in a greenlet); ids and timestamps are made here, so the new rows
need no read-back. Otherwise (SQLite, or a send after a given message) the read comes first,
then the write: one statement on an autocommit connection on PostgreSQL, one transaction on
SQLite. Then the ``message.created`` events and the job go out in one Redis round trip. The
statements are built once, at import.

Branches: every message points at the message before it (``parent_id``). An edit adds a
sibling of the edited user message, a regenerate a sibling of the assistant message; the
active branch is the one ending at the newest message.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, TypeVar

from flask import current_app
from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from bestchat.errors import ApiError, account_disabled, not_found
from bestchat.extensions import db
from bestchat.models import Conversation, FileUpload, Message, User
from bestchat.models.base import utcnow
from bestchat.providers.registry import check_settings
from bestchat.serializers import conversation_json
from bestchat.services import message_status, send_statement
from bestchat.services.admission import Admitting, get_admission, release_quietly
from bestchat.streaming import events, get_bus
from bestchat.tasks.queue import enqueue_after

DEFAULT_TITLE = "New chat"
TITLE_MAX = 60
GENERATE_TASK = "bestchat.generate"
UPDATABLE = ("title", "model", "system_prompt", "settings")
# Messages written together get created_at one tick apart, so the newest is always the last.
TICK = timedelta(microseconds=1)
T = TypeVar("T")


class ConversationManager:
    """The chat operations of ``user``."""

    def __init__(self, user: User):
        self.user = user

    # ---- conversations --------------------------------------------------------------------

    def create(self, *, title: str | None = None, model: str | None = None,
               system_prompt: str | None = None, settings: dict[str, Any] | None = None) -> Conversation:
        """A new conversation; its ``settings`` are checked against the providers' options
        first (400 naming the setting, nothing stored)."""
        check_settings(settings or {})
        conversation = Conversation(user_id=self.user.id, title=title or DEFAULT_TITLE, model=model,
                                    system_prompt=system_prompt, settings=settings or {})
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
            raise not_found("conversation")
        return conversation

    def update(self, conversation_id: uuid.UUID, **changes: Any) -> Conversation:
        """Change any of title, model, system_prompt, settings (rename = change the title);
        announced to the conversation's clients as ``conversation.updated``. New ``settings``
        are checked first (400 naming the setting, nothing changed)."""
        conversation = self.get(conversation_id)
        for name in changes:
            if name not in UPDATABLE:
                raise ValueError(f"not an updatable field: {name}")
        check_settings(changes.get("settings") or {})
        for name, value in changes.items():
            setattr(conversation, name, value)
        conversation.title = conversation.title or DEFAULT_TITLE
        conversation.settings = conversation.settings or {}
        db.session.commit()
        announce(conversation)
        return conversation

    def delete(self, conversation_id: uuid.UUID) -> None:
        """Delete it with its messages; running generations are asked to stop."""
        conversation = self.get(conversation_id)
        active = db.session.execute(select(Message.id, Message.status).where(
            Message.conversation_id == conversation.id, Message.status.in_(message_status.ACTIVE))).all()
        for message_id, _status in active:
            get_bus().request_cancel(str(message_id))
        db.session.delete(conversation)
        db.session.commit()
        release_quietly(*(str(message_id) for message_id, status in active if status != "streaming"))
        get_bus().broadcast(str(conversation_id), events.conversation_deleted(str(conversation_id)))

    # ---- messages -------------------------------------------------------------------------

    def message(self, message_id: uuid.UUID) -> Message:
        message = db.session.get(Message, message_id)
        if message is None or message.conversation.user_id != self.user.id:
            raise not_found("message")
        return message

    def messages(self, conversation_id: uuid.UUID, *, limit: int = 50,
                 before: uuid.UUID | None = None) -> dict[str, Any]:
        """One page of messages, newest page first (each page in chronological order), every
        branch included. Returns ``{messages, siblings, leaf_id, has_more}``: ``siblings``
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
                "leaf_id": leaf.id if leaf else None, "has_more": len(rows) > limit}

    def send(self, conversation_id: uuid.UUID, content: str, *, model: str | None = None,
             parent_id: uuid.UUID | None = None, attachments: list[str] | None = None,
             client_id: str | None = None) -> tuple[Message, Message]:
        """Add a user message (after ``parent_id``, default the newest message) and start its
        answer. Returns (user message, pending or queued assistant message). The answer's
        admission runs while the conversation is read."""
        _check_content(content)
        admitting = get_admission().start(str(uuid.uuid4()), str(self.user.id))
        try:
            if parent_id is None and send_statement.applies():
                return self._send_in_one_statement(conversation_id, content, self._attachment_parts(attachments or []),
                                                   model, client_id, admitting)
            autocommit_reads()
            if parent_id is not None:
                conversation = self.get(conversation_id)
                parent = self.message(parent_id)
                if parent.conversation_id != conversation.id:
                    raise not_found("message")
                parent_status: str | None = parent.status
            else:
                conversation, parent_id, parent_status = self._with_newest(conversation_id)
            return self._exchange(conversation, parent_id, parent_status, content, model=model,
                                  parts=self._attachment_parts(attachments or []), client_id=client_id,
                                  admitting=admitting)
        finally:
            admitting.abandon()  # (given back unless the answer took it)

    def start_from_transcript(self, transcript: list[tuple[str, str]], *, model: str | None = None,
                              system_prompt: str | None = None,
                              settings: dict[str, Any] | None = None) -> Message:
        """A new conversation from a whole transcript at once (how OpenAI-style clients talk):
        every ``(role, content)`` but the last stored as a complete message, the last (a user
        message) sent as usual, all in one transaction. Titled after the first user message.
        Returns the pending (or queued) answer."""
        *history, (role, content) = transcript
        if role != "user":
            raise ValueError("a transcript must end with a user message")
        _check_content(content)
        first = next(text for speaker, text in transcript if speaker == "user")
        now = utcnow()
        conversation = Conversation(id=uuid.uuid4(), user_id=self.user.id, title=short_title(first),
                                    provider=None, model=model, system_prompt=system_prompt,
                                    settings=settings or {}, created_at=now, updated_at=now)
        rows: list[Any] = [conversation]
        parent_id: uuid.UUID | None = None
        for index, (speaker, text) in enumerate(history):
            message = _new_message(conversation_id=conversation.id, parent_id=parent_id, role=speaker,
                                   content=text, status="complete", created_at=now + index * TICK)
            rows.append(message)
            parent_id = message.id
        return self._exchange(conversation, parent_id, None, content, model=model, parts=[],
                              now=now + len(history) * TICK, add=rows)[1]

    def edit(self, message_id: uuid.UUID, content: str, *,
             model: str | None = None) -> tuple[Message, Message]:
        """A new version of a user message: a sibling branch with its own answer; the old
        branch stays as it was."""
        original = self.message(message_id)
        if original.role != "user":
            raise ApiError(409, "not_editable", "only a user message can be edited")
        _check_content(content)
        parent = db.session.get(Message, original.parent_id) if original.parent_id else None
        return self._exchange(original.conversation, original.parent_id, parent.status if parent else None,
                              content, model=model, parts=list(original.parts or []))

    def regenerate(self, message_id: uuid.UUID, *, model: str | None = None) -> Message:
        """A new answer to the same user message, as a sibling of ``message_id``."""
        original = self.message(message_id)
        if original.role != "assistant":
            raise ApiError(409, "not_regenerable", "only an assistant message can be regenerated")
        if original.status in message_status.ACTIVE:
            raise ApiError(409, "generation_in_progress", "this answer is still being generated")
        now = utcnow()
        answer = _admitted_answer(original.conversation_id, original.parent_id,
                                  model or original.model, now, user_id=self.user.id)
        _store_and_start(answer, touch=original.conversation)
        return answer

    def cancel(self, message_id: uuid.UUID) -> Message:
        """Stop an answer: at once if its job has not started, else within one chunk."""
        message = self.message(message_id)
        if message.role != "assistant":
            raise ApiError(409, "not_cancellable", "only an assistant message can be cancelled")
        if message.status in message_status.ACTIVE:
            get_bus().request_cancel(str(message.id))
            if message_status.finish(message.id, "cancelled", from_statuses=("pending", "queued")):
                release_quietly(str(message.id))  # its job will find it cancelled and do nothing
        db.session.expire_all()
        return self.message(message_id)

    # ---- helpers --------------------------------------------------------------------------

    def _exchange(self, conversation: Any, parent_id: uuid.UUID | None,
                  parent_status: str | None, content: str, *, model: str | None,
                  parts: list[Any], client_id: str | None = None, now: datetime | None = None,
                  add: Iterable[Any] = (), admitting: Admitting | None = None) -> tuple[Message, Message]:
        """The user message after ``parent_id`` and its answer (admitted here, or already by
        ``admitting``), stored (with the ``add`` rows) in one transaction, announced, then the
        answer's job enqueued. (Callers check ``content`` first.)"""
        if parent_status in message_status.ACTIVE:
            raise _in_progress()
        now = now or utcnow()
        question = _new_message(conversation_id=conversation.id, parent_id=parent_id, role="user",
                                content=content, parts=parts, status="complete", created_at=now)
        answer = _admitted_answer(conversation.id, question.id, model or conversation.model, now + TICK,
                                  admitting, user_id=self.user.id)
        _store_and_start(answer, question, touch=conversation, add=add, client_id=client_id)
        return question, answer

    def _send_in_one_statement(self, conversation_id: uuid.UUID, content: str, parts: list[Any],
                               model: str | None, client_id: str | None,
                               admitting: Admitting) -> tuple[Message, Message]:
        """:meth:`send` after the newest message on PostgreSQL: read, checks and write in one
        statement (:mod:`bestchat.services.send_statement`) while the admission runs."""
        now = utcnow()
        question = _new_message(conversation_id=conversation_id, role="user", content=content,
                                parts=parts, status="complete", created_at=now)
        answer = _new_message(id=uuid.UUID(admitting.message_id), conversation_id=conversation_id,
                              parent_id=question.id, role="assistant", status="pending",
                              model=model or None, created_at=now + TICK)
        found = send_statement.store(question, answer, user_id=self.user.id)
        if found is None or found.user_id != self.user.id:
            raise not_found("conversation")
        if found.disabled:
            raise account_disabled()
        if not found.stored:
            raise _in_progress()
        question.parent_id = found.newest_id
        answer.model = answer.model or found.model
        try:
            status = admitting.status()
        except BaseException:
            _unstore_quietly(question, answer, found.updated_at)
            raise
        if status != answer.status:
            try:
                send_statement.set_status(answer.id, status)
            except BaseException:
                release_quietly(str(answer.id))
                _unstore_quietly(question, answer, found.updated_at)
                raise
            answer.status = status
        _announce_and_start(answer, question, client_id=client_id)
        return question, answer

    def _with_newest(self, conversation_id: uuid.UUID) -> tuple[Any, uuid.UUID | None, str | None]:
        """The user's conversation (its ``id`` and ``model``, not an ORM object) with the id
        and status of its newest message (None, None when empty), in one query, which also
        checks that the account is still active (so a WebSocket needs no separate check
        before a ``send``). SQLite's; on PostgreSQL the send's one statement reads the same."""
        row = db.session.execute(_WITH_NEWEST, {"conversation_id": conversation_id}).first()
        if row is None or row.user_id != self.user.id:
            raise not_found("conversation")
        if row.disabled:
            raise account_disabled()
        return row, row.newest_id, row.newest_status

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

    def _attachment_parts(self, upload_ids: list[str]) -> list[dict[str, Any]]:
        parts = []
        for raw in upload_ids:
            try:
                upload = db.session.get(FileUpload, uuid.UUID(str(raw)))
            except ValueError:
                upload = None
            if upload is None or upload.user_id != self.user.id:
                raise not_found("upload")
            parts.append({"type": "file", "upload_id": str(upload.id), "name": upload.name,
                          "mime": upload.mime})
        return parts


# Built once: sending is on the path of every first token (see the module docstring).
_NEWEST = (select(Message.id).where(Message.conversation_id == Conversation.id)
           .order_by(Message.created_at.desc(), Message.id.desc()).limit(1)
           .correlate(Conversation).scalar_subquery())
_WITH_NEWEST = (select(Conversation.id, Conversation.user_id, Conversation.model,
                       Message.id.label("newest_id"), Message.status.label("newest_status"), User.disabled)
                .join(User, User.id == Conversation.user_id)
                .outerjoin(Message, Message.id == _NEWEST)
                .where(Conversation.id == bindparam("conversation_id")))
_TOUCH = (update(Conversation).where(Conversation.id == bindparam("conversation_id"))
          .values(updated_at=bindparam("now")).execution_options(synchronize_session=False))
_INSERT_MESSAGES = insert(Message.__table__)


def _new_message(**values: Any) -> Message:
    """A message with every column set here (ids and timestamps included), so it needs no
    flush before another row can point at it and no read-back after the commit."""
    fields: dict[str, Any] = {"id": uuid.uuid4(), "parent_id": None, "content": "", "parts": [],
                              "error": None, "error_code": None, "token_count": None,
                              "provider": None, "model": None, "last_seq": 0}
    fields.update(values)
    fields.setdefault("updated_at", fields["created_at"])
    return Message(**fields)


def _admitted_answer(conversation_id: uuid.UUID, parent_id: uuid.UUID | None, model: str | None,
                     created_at: datetime, admitting: Admitting | None = None, *,
                     user_id: uuid.UUID) -> Message:
    """A new assistant message of ``user_id``, admitted first (here, or already started by
    ``admitting``): ``pending`` or ``queued``, or the refusal (Overloaded, the user's limits)
    raised before anything is stored."""
    admitting = admitting or get_admission().start(str(uuid.uuid4()), str(user_id))
    answer_id = uuid.UUID(admitting.message_id)
    status = admitting.status()
    return _new_message(id=answer_id, conversation_id=conversation_id, parent_id=parent_id,
                        role="assistant", status=status, model=model, created_at=created_at)


def _store_and_start(answer: Message, *announced: Message, touch: Any,
                     add: Iterable[Any] = (), client_id: str | None = None) -> None:
    """Atomically: ``add`` (new rows, through the session), the conversation ``touch``'s
    ``updated_at`` set to the answer's time (``touch``: the ORM object, or a row with its
    ``id``), and the ``announced`` messages and the ``answer`` inserted as they are (the
    objects stay out of the session: every column is set in memory, so nothing needs reading
    back): one statement on an autocommit connection (see :func:`autocommit_reads`), else
    one transaction. Then ``message.created`` for each announced message and the answer, in
    that order, and then the answer's job enqueued (announce first: chunks follow it), in one
    Redis round trip (:func:`bestchat.tasks.queue.enqueue_after`). A failure before that gives
    the answer's admission back; a failure of that ends the answer ``failed`` (503
    ``unavailable``: whether its job went out is unknown, and a job that finds its answer
    ended does nothing)."""
    messages = [*announced, answer]
    now = messages[0].created_at
    try:
        connection = db.session.connection()
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT" and not add:
            # PostgreSQL (see autocommit_reads): one statement, atomic on its own
            connection.exec_driver_sql(send_statement.touch_and_insert(len(messages)),
                                       {"conversation_id": touch.id, "now": now,
                                        **send_statement.message_parameters(messages)})
            db.session.commit()  # gives the connection back
        else:
            if add:
                db.session.add_all(add)
                db.session.flush()
            db.session.execute(_TOUCH, {"conversation_id": touch.id, "now": now})
            db.session.execute(_INSERT_MESSAGES, [_columns(message) for message in messages])
            _commit_keeping_values()
        if isinstance(touch, Conversation):
            set_committed_value(touch, "updated_at", now)
    except BaseException:
        release_quietly(str(answer.id))
        raise
    _announce_and_start(answer, *announced, client_id=client_id)


def _announce_and_start(answer: Message, *announced: Message, client_id: str | None = None) -> None:
    """``message.created`` for each stored ``announced`` message and the ``answer``, then the
    answer's job (see :func:`_store_and_start`)."""
    messages = [*announced, answer]
    try:
        enqueue_after(str(answer.conversation_id), [events.created(message, client_id) for message in messages],
                      GENERATE_TASK, str(answer.id))
    except Exception as error:
        current_app.logger.exception("could not enqueue generation of %s", answer.id)
        release_quietly(str(answer.id))
        message_status.finish(answer.id, "failed", error="the generation could not be queued",
                              error_code="unavailable")
        raise ApiError(503, "unavailable", "the generation could not be queued; try again") from error


def _in_progress() -> ApiError:
    return ApiError(409, "generation_in_progress", "wait for the current answer to finish (or cancel it) first")


def _unstore_quietly(question: Message, answer: Message, updated_at: datetime) -> None:
    """Undo a one-statement send whose answer was refused (logged if that fails too: the
    reaper then ends the answer, which no job will run)."""
    try:
        send_statement.unstore(question, answer, updated_at=updated_at)
    except Exception:  # noqa: BLE001 - the refusal is what the caller must see
        current_app.logger.exception("could not remove the refused send of %s", answer.id)


def autocommit_reads() -> None:
    """On PostgreSQL, when this session has no transaction open yet, put it on an autocommit
    connection: its reads then need no ``BEGIN`` and no ``COMMIT`` round trips (a WebSocket
    send's ownership check; a send after a given message, whose write is then one statement
    too: :func:`_store_and_start`). A send after the newest message needs none of this: it is
    one statement of its own (:mod:`bestchat.services.send_statement`)."""
    if db.session.get_bind().dialect.name == "postgresql" and not db.session().in_transaction():
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def _columns(message: Message) -> dict[str, Any]:
    """The column values of a new message, for a bulk INSERT (by column name)."""
    return {name: getattr(message, key) for key, name, _kind in send_statement.MESSAGE_COLUMNS}


def _commit_keeping_values() -> None:
    """Commit without expiring what the session holds. The rows written by the send path are
    exactly their in-memory values (every column is set before the flush, the database adds
    nothing), so expiring them would only cost one SELECT per object when they are serialised
    for the events and the response. The session's usual behaviour is restored at once."""
    session = db.session()
    expire = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire


def branch(message: Message) -> list[Message]:
    """The messages from the conversation's start down to ``message`` (inclusive)."""
    rows = db.session.scalars(select(Message).where(Message.conversation_id == message.conversation_id))
    by_id = {m.id: m for m in rows}
    by_id.setdefault(message.id, message)
    return ancestry(by_id, message.id, lambda m: m.parent_id)


def ancestry(by_id: dict[Any, T], leaf_id: Any, parent_of: Callable[[T], Any]) -> list[T]:
    """The item ``leaf_id`` of ``by_id`` and its ancestors through ``parent_of`` (None at the
    root), oldest first; at most ``len(by_id)`` of them, whatever the data."""
    chain: list[T] = []
    current = by_id.get(leaf_id) if leaf_id is not None else None
    while current is not None and len(chain) < len(by_id):
        chain.append(current)
        parent = parent_of(current)
        current = by_id.get(parent) if parent is not None else None
    chain.reverse()
    return chain


def auto_title(answer: Message) -> Conversation | None:
    """After the first exchange, name an untitled conversation after its first question.
    Returns the conversation when it was renamed (not yet committed)."""
    conversation = answer.conversation
    if conversation.title != DEFAULT_TITLE:
        return None
    first = next((m for m in branch(answer) if m.role == "user" and m.content.strip()), None)
    if first is None:
        return None
    conversation.title = short_title(first.content)
    return conversation


def short_title(text: str) -> str:
    """The first line of ``text``, whitespace collapsed, cut at a word to at most 60 characters."""
    line = re.sub(r"\s+", " ", text.strip().splitlines()[0] if text.strip() else "").strip()
    if len(line) <= TITLE_MAX:
        return line or DEFAULT_TITLE
    cut = line[: TITLE_MAX - 1].rsplit(" ", 1)[0] or line[: TITLE_MAX - 1]
    return cut.rstrip(" ,.;:") + "…"


def _check_content(content: str) -> None:
    if not isinstance(content, str) or not content.strip():
        raise ApiError(400, "missing_field", "'content' must not be empty")
    limit = current_app.config["MESSAGE_MAX_CHARS"]
    if len(content) > limit:
        raise ApiError(400, "invalid_field", f"'content' is longer than {limit} characters")


def announce(conversation: Conversation) -> None:
    """Tell the conversation's clients it changed (title, model, ...): ``conversation.updated``."""
    get_bus().broadcast(str(conversation.id), events.conversation_updated(conversation_json(conversation)))
