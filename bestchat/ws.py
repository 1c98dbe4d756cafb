"""The WebSocket endpoint ``/ws`` of the public contract: a thin adapter.

The handshake is authenticated before the upgrade (session cookie from this origin, or
``?token=<api token>``): a refused one gets a JSON 401/403, not a socket. Then each text frame
is one command (``subscribe``, ``send``, ``cancel``, ``typing``, ``ping``) handed to the
conversation service or the bus; everything the client receives goes through one
:class:`Subscriber` and one writer greenlet. A bad frame (not JSON, unknown type, missing or
wrong field, too big) or a failed command gets an ``error`` frame and the socket stays usable;
no exception ever leaves the handler (Flask would write an HTTP 500 into the upgraded socket).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable
from urllib.parse import urlsplit

import gevent
from flask import Blueprint, Flask, current_app, g, request
from flask_login import current_user
from simple_websocket import ConnectionClosed

from bestchat.api.validation import field, parse_uuid
from bestchat.errors import ApiError, not_found
from bestchat.extensions import db, sock
from bestchat.models import User
from bestchat.models.chat import FINAL_STATUSES
from bestchat.security.authn import user_for_token
from bestchat.services.conversations import ConversationManager, autocommit_reads
from bestchat.streaming import events, get_bus
from bestchat.streaming.bus import BusUnavailable
from bestchat.streaming.subscriber import Subscriber

log = logging.getLogger(__name__)

bp = Blueprint("ws", __name__)


@bp.before_request
def authenticate_handshake() -> None:
    token = request.args.get("token")
    if token:
        g.user = user_for_token(token)
        return
    if not current_user.is_authenticated:
        raise ApiError(401, "unauthorized", "authentication required: session cookie or ?token=")
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        raise ApiError(403, "forbidden", "cross-origin WebSocket with a session cookie refused")
    g.user = current_user._get_current_object()


@sock.route("/ws", bp=bp)
def websocket(ws) -> None:
    user = g.user
    db.session.refresh(user)  # every column loaded: the socket keeps it (detached)
    db.session.remove()  # hold no database connection for the socket's lifetime
    ChatSocket(ws, current_app._get_current_object(), user).run()


class ChatSocket:
    """One connected client."""

    def __init__(self, ws, app: Flask, user: User):
        self.ws = ws
        self.app = app
        self.user = user
        self.subscriber = Subscriber(get_bus(app))
        self.max_frame = app.config["WS_MAX_FRAME"]
        self.owned: set[uuid.UUID] = set()

    def run(self) -> None:
        writer = gevent.spawn(self._write)
        try:
            while not writer.dead:  # the writer ends when sending fails
                raw = self.ws.receive(timeout=5)
                if raw is not None:
                    self._handle(raw)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - see the module docstring
            log.exception("websocket handler failed")
        finally:
            self.subscriber.close()
            writer.kill()

    def _write(self) -> None:
        try:
            while True:
                self.ws.send(self.subscriber.next().text)
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001
            log.exception("websocket writer failed")

    def _inactive(self) -> None:
        self._error("unauthorized", "this account is no longer active")
        self.ws.close(1008, "account inactive")

    def _error(self, code: str, message: str) -> None:
        self.subscriber.send({"type": "error", "code": code, "message": message})

    def _handle(self, raw: str | bytes) -> None:
        if len(raw) > self.max_frame:
            return self._error("frame_too_large", f"frames are limited to {self.max_frame} bytes")
        if isinstance(raw, bytes):
            return self._error("invalid_frame", "frames must be JSON text")
        try:
            frame = json.loads(raw)
        except ValueError:
            return self._error("invalid_json", "frame is not valid JSON")
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return self._error("invalid_frame", "a frame is a JSON object with a string 'type'")
        if frame["type"] == "ping":
            return self.subscriber.send({"type": "pong"})
        handler = COMMANDS.get(frame["type"])
        if handler is None:
            return self._error("unknown_type", f"unknown frame type '{frame['type'][:50]}'")
        try:
            with self.app.app_context():
                user = self.user
                if handler is not ChatSocket.send:  # (a send checks the account in its own query)
                    user = db.session.get(User, self.user.id)
                    if user is None or user.disabled:
                        return self._inactive()
                handler(self, ConversationManager(user), frame)
        except ApiError as error:
            if error.code == "account_disabled":
                return self._inactive()
            self._error(error.code, error.message)
        except BusUnavailable as error:
            self._error("unavailable", str(error))
        except ConnectionClosed:
            raise
        except Exception:  # noqa: BLE001
            log.exception("websocket command %s failed", frame["type"])
            self._error("internal_error", "the command failed")

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
            raise not_found("message")
        after_seq = field(frame, "after_seq", int, required=False, default=0)
        if after_seq < 0:
            raise ApiError(400, "invalid_field", "'after_seq' must be 0 or more")
        final = events.terminal(message) if message.status in FINAL_STATUSES else None
        db.session.commit()
        self.subscriber.resume(str(conversation_id), str(message.id), after_seq, final)

    def send(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        if parse_uuid(field(frame, "conversation_id"), "conversation") not in self.owned:
            autocommit_reads()  # (PostgreSQL: the ownership read needs no BEGIN/COMMIT then)
        conversation_id = self._conversation(manager, frame)
        content = field(frame, "content", strip=False)
        client_id = field(frame, "client_id", required=False, max_length=100)
        model = field(frame, "model", required=False, max_length=200)
        self.subscriber.follow(str(conversation_id))
        manager.send(conversation_id, content, model=model, client_id=client_id)

    def cancel(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        manager.cancel(parse_uuid(field(frame, "message_id"), "message"))

    def typing(self, manager: ConversationManager, frame: dict[str, Any]) -> None:
        conversation_id = self._conversation(manager, frame)
        user = {"id": str(manager.user.id), "display_name": manager.user.display_name}
        get_bus().broadcast(str(conversation_id), events.typing(str(conversation_id), user),
                            origin=self.subscriber.id)


COMMANDS: dict[str, Callable[[ChatSocket, ConversationManager, dict[str, Any]], None]] = {
    "subscribe": ChatSocket.subscribe, "send": ChatSocket.send, "cancel": ChatSocket.cancel,
    "typing": ChatSocket.typing,
}


def init_ws(app: Flask) -> None:
    """Keep-alive pings and a hard frame limit for the socket server, and the route."""
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        "ping_interval": app.config["WS_PING_INTERVAL"],
        "max_message_size": 4 * app.config["WS_MAX_FRAME"],
    })
    app.register_blueprint(bp)
