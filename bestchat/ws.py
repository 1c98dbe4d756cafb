"""The WebSocket endpoint ``/ws`` of the public contract: a thin adapter.

The handshake is authenticated before the upgrade (session cookie from this origin, a
single-use ``?ticket=`` from ``POST /api/v1/ws-ticket``, ``Authorization: Bearer <api token>``,
or ``?token=<api token>``): a refused one gets a JSON 401/403, not a socket. Then each text frame
is one command (``subscribe``, ``send``, ``cancel``, ``typing``, ``approve``, ``ping``) handed
to the conversation or tool service or the bus; everything the client receives goes through one
:class:`Subscriber` and one writer greenlet, which sends all the frames queued together in one
write, each frame's bytes built once per process for every socket following the conversation
(:mod:`bestchat.streaming.websocket`). A bad frame (not JSON, unknown type, missing or
wrong field, too big, nested too deep, text that cannot be stored: see
:func:`bestchat.validation.parse_json`) or a failed command gets an ``error`` frame
(:func:`bestchat.error_responses.ws_frame`) and the socket stays usable; no exception ever
leaves the handler (Flask would write an HTTP 500 into the upgraded socket).

While it is open the socket keeps what it was opened with (:class:`SocketCredentials`) and
re-checks it when the account's credentials change (a notice on the bus, from any web process:
:mod:`bestchat.security.revocation`), every ``WS_AUTH_RECHECK`` seconds, and cheaply before
each command that reads the account (:data:`COMMANDS`); once they no longer hold, it gets an
``error`` frame and is closed with code 1008.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import gevent
from flask import Blueprint, Flask, current_app, g, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from bestchat.error_responses import ws_frame
from bestchat.errors import (
    AccountDisabled, DomainError, Forbidden, Invalid, NotFound, TooLarge, Unauthorized, Unavailable,
)
from bestchat.extensions import db, sock
from bestchat.models import User
from bestchat.security import revocation, tickets
from bestchat.security.authn import SocketCredentials, bearer_token, token_for
from bestchat.services import site_settings, tools
from bestchat.services.conversations import ConversationManager
from bestchat.streaming import events, get_bus
from bestchat.streaming.bus import BusUnavailable
from bestchat.streaming.follow import follow_answer
from bestchat.streaming.subscriber import Subscriber
from bestchat.streaming.websocket import FrameWriter
from bestchat.validation import MAX_ATTACHMENTS, field, parse_json, parse_uuid

log = logging.getLogger(__name__)

bp = Blueprint("ws", __name__)

# The decisions of an ``approve`` frame.
DECISIONS = ("approve", "deny")

# Queued after the last frame of a socket whose credentials were revoked: the writer closes it.
CLOSE = "socket.close"


@bp.before_request
def authenticate_handshake() -> None:
    ticket = request.args.get("ticket")
    if ticket:
        g.user, g.socket_credentials = tickets.redeem(ticket)
        return
    token = bearer_token() or request.args.get("token")
    if token:
        api_token = token_for(token)
        g.user = api_token.user
        g.socket_credentials = SocketCredentials.of_token(api_token)
        return
    if not current_user.is_authenticated:
        raise Unauthorized("unauthorized",
                           "authentication required: session cookie, ?ticket=, Bearer token or ?token=")
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise Forbidden("forbidden", "cross-origin WebSocket with a session cookie refused")
    g.user = current_user._get_current_object()
    g.socket_credentials = SocketCredentials.of_session(g.user)


@sock.route("/ws", bp=bp)
def websocket(ws) -> None:
    user = g.user
    db.session.refresh(user)  # every column loaded: the socket keeps it (detached)
    credentials = g.socket_credentials
    db.session.remove()  # hold no database connection for the socket's lifetime
    ChatSocket(ws, current_app._get_current_object(), user, credentials).run()


class ChatSocket:
    """One connected client."""

    def __init__(self, ws, app: Flask, user: User, credentials: SocketCredentials | None = None):
        self.ws = ws
        self.app = app
        self.user = user
        self.credentials = credentials or SocketCredentials.of_account(user)
        self.subscriber = Subscriber(get_bus(app))
        self.max_frame = app.config["WS_MAX_FRAME"]
        self.owned: set[uuid.UUID] = set()
        self.recheck_every = float(app.config["WS_AUTH_RECHECK"])
        self._checked_at = time.monotonic()
        self._stale = False  # a credentials change was announced: re-check before the next command
        self._closed = False  # no more commands are handled
        self._closing = False  # the writer sends what is queued, then closes the socket
        self._stop_notices = self._follow_notices(app)

    def run(self) -> None:
        writer = gevent.spawn(self._write)
        try:
            while not writer.dead and not self._closed:  # the writer ends when sending fails
                raw = self.ws.receive(timeout=5)
                site_settings.refresh(self.app)  # a long-lived socket sees the console's changes
                if time.monotonic() - self._checked_at >= self.recheck_every and not self._recheck():
                    break
                if raw is not None:
                    self._handle(raw)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - see the module docstring
            log.exception("websocket handler failed")
        finally:
            if self._closing:
                writer.join(timeout=1.0)  # the error frame and the close go out first
            self._stop_notices()
            self.subscriber.close()
            writer.kill()

    # ---- credentials ----------------------------------------------------------------------

    def _follow_notices(self, app: Flask) -> Callable[[], None]:
        """Re-check at once whenever the account's credentials change, in any web process."""
        try:
            return get_bus(app).subscribe(revocation.channel(self.user.id), self._on_notice)
        except Exception as error:  # noqa: BLE001 - the periodic re-check remains
            log.warning("socket cannot follow credential changes: %s", error)
            return lambda: None

    def _on_notice(self, _delivery) -> None:
        # (a bus listener must not block: the re-check runs in a greenlet of its own; the bus's
        # resynchronisation after a reconnect arrives here too, and re-checks as well)
        self._stale = True
        gevent.spawn(self._recheck)

    def _recheck(self) -> bool:
        """Whether the socket's credentials still hold; if not, say so and close it."""
        self._stale = False
        self._checked_at = time.monotonic()
        try:
            with self.app.app_context():
                valid = self.credentials.still_valid()
        except Exception:  # noqa: BLE001 - e.g. the database is restarting: check again later
            log.exception("socket credentials check failed")
            return True
        if not valid:
            self._revoked("credentials revoked")
        return valid

    def _revoked(self, reason: str) -> None:
        self._shut(Unauthorized("unauthorized", "the credentials of this connection are no longer valid"), reason)

    def _inactive(self) -> None:
        self._shut(Unauthorized("unauthorized", "this account is no longer active"), "account inactive")

    def _shut(self, error: DomainError, reason: str) -> None:
        """Send ``error``, then close with code 1008 and ``reason`` (by the writer, after the
        frames queued before; at once if it has not within a second)."""
        if self._closed:
            return
        self._closed = self._closing = True
        self._error(error)
        self.subscriber.send({"type": CLOSE, "reason": reason})
        gevent.spawn_later(1.0, self._close, reason)

    def _close(self, reason: str) -> None:
        try:
            self.ws.close(1008, reason)
        except ConnectionClosed:
            pass

    def _write(self) -> None:
        """Send everything queued, as one write per batch (:class:`FrameWriter`)."""
        writer = FrameWriter(self.ws)
        try:
            while True:
                batch = self.subscriber.next_batch()
                for index, delivery in enumerate(batch):
                    if delivery.kind == CLOSE:
                        if index:
                            writer.write(batch[:index])
                        return self._close(delivery.event["reason"])
                writer.write(batch)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001
            log.exception("websocket writer failed")

    def _error(self, error: DomainError) -> None:
        self.subscriber.send(ws_frame(error))

    def _handle(self, raw: str | bytes) -> None:
        if self._closed:
            return
        if len(raw) > self.max_frame:
            return self._error(TooLarge("frame_too_large", f"frames are limited to {self.max_frame} bytes"))
        if isinstance(raw, bytes):
            return self._error(Invalid("invalid_frame", "frames must be JSON text"))
        try:
            frame = parse_json(raw)  # (too deep, or text that cannot be stored: an error frame too)
        except DomainError as error:
            return self._error(error)
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return self._error(Invalid("invalid_frame", "a frame is a JSON object with a string 'type'"))
        if frame["type"] == "ping":
            return self.subscriber.send({"type": "pong"})
        command = COMMANDS.get(frame["type"])
        if command is None:
            return self._error(Invalid("unknown_type", f"unknown frame type '{frame['type'][:50]}'"))
        try:
            if self._stale and not self._recheck():
                return
            with self.app.app_context():
                user = self.user
                if command.reads_account:
                    user = db.session.get(User, self.user.id)
                    if user is None or user.disabled:
                        return self._inactive()
                    if not self.credentials.matches(user):
                        return self._revoked("credentials revoked")
                command.run(self, ConversationManager(user), frame)
        except AccountDisabled:
            self._inactive()
        except DomainError as error:
            self._error(error)
        except BusUnavailable as error:
            self._error(Unavailable("unavailable", str(error)))
        except ConnectionClosed:
            raise
        except Exception:  # noqa: BLE001
            log.exception("websocket command %s failed", frame["type"])
            self._error(DomainError("internal_error", "the command failed"))

    # ---- commands -------------------------------------------------------------------------

    def _conversation(self, manager: ConversationManager, frame: dict[str, Any]) -> uuid.UUID:
        conversation_id = parse_uuid(field(frame, "conversation_id"), "conversation")
        if conversation_id not in self.owned:
            manager.get(conversation_id)
            self.owned.add(conversation_id)
        return conversation_id

    def subscribe(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        conversation_id = self._conversation(manager, frame)
        message_id = field(frame, "message_id", required=False)
        if message_id is None:
            self.subscriber.follow(str(conversation_id))
            return
        message = manager.message(parse_uuid(message_id, "message"))
        if message.conversation_id != conversation_id:
            raise NotFound("message")
        after_seq = field(frame, "after_seq", int, required=False, default=0)
        if after_seq < 0:
            raise Invalid("invalid_field", "'after_seq' must be 0 or more")
        follow_answer(message, after_seq, subscriber=self.subscriber, live=True)

    def send(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        """The send checks ownership itself (another user's conversation is not found, nothing
        stored); the socket follows the conversation once it is stored, before its events go out."""
        conversation_id = parse_uuid(field(frame, "conversation_id"), "conversation")
        content = field(frame, "content", strip=False)
        client_id = field(frame, "client_id", required=False, max_length=100)
        model = field(frame, "model", required=False, max_length=200)
        attachments = field(frame, "attachments", list, required=False, default=[])
        if len(attachments) > MAX_ATTACHMENTS or not all(isinstance(item, str) for item in attachments):
            raise Invalid("invalid_field", f"'attachments' must be a list of at most {MAX_ATTACHMENTS} upload ids")

        def follow() -> None:
            self.owned.add(conversation_id)
            self.subscriber.follow(str(conversation_id))

        manager.send(conversation_id, content, model=model, client_id=client_id, attachments=attachments,
                     before_announce=follow)

    def cancel(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        manager.cancel(parse_uuid(field(frame, "message_id"), "message"))

    def approve(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        """A decision on a tool call waiting for the user; nothing is answered on success (the
        call's events follow on its conversation), another user's call is not found."""
        execution_id = parse_uuid(field(frame, "execution_id"), "tool execution")
        decision = field(frame, "decision")
        if decision not in DECISIONS:
            raise Invalid("invalid_field", "'decision' must be 'approve' or 'deny'")
        remember = field(frame, "remember", bool, required=False, default=False)
        tools.decide(manager.user.id, str(execution_id), decision, remember=remember)

    def typing(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        conversation_id = self._conversation(manager, frame)
        user = {"id": str(manager.user.id), "display_name": manager.user.display_name}
        get_bus().broadcast(str(conversation_id), events.typing(str(conversation_id), user),
                            origin=self.subscriber.id)


@dataclass(frozen=True)
class Command:
    """A frame type the socket handles: its handler, and whether the account is read (enabled,
    same role and session) before it runs."""

    run: Callable[[ChatSocket, ConversationManager, dict[str, Any]], None]
    reads_account: bool


# Every command reads the account first (a socket outlives changes to it), except ``send``: the
# send refuses a disabled account itself, in the statement that stores the exchange
# (AccountDisabled, which closes the socket as inactive), so a read of its own would only add a
# database round trip before the answer starts. A change of role or session reaches a sending
# socket through the credential notices and the periodic re-check.
COMMANDS: dict[str, Command] = {
    "subscribe": Command(ChatSocket.subscribe, reads_account=True),
    "send": Command(ChatSocket.send, reads_account=False),
    "cancel": Command(ChatSocket.cancel, reads_account=True),
    "typing": Command(ChatSocket.typing, reads_account=True),
    "approve": Command(ChatSocket.approve, reads_account=True),
}


def init_ws(app: Flask) -> None:
    """Keep-alive pings and a hard frame limit for the socket server, and the route."""
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        "ping_interval": app.config["WS_PING_INTERVAL"],
        "max_message_size": 4 * app.config["WS_MAX_FRAME"],
    })
    app.register_blueprint(bp)
