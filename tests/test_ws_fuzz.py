"""A WebSocket frame fuzzer against a real server (gunicorn + gevent; SQLite, and PostgreSQL +
Redis when configured): malformed frames never close the socket or fail inside the server.

Each generated frame must be answered normally or with an ``error`` frame whose code is not
``internal_error``, and a ``ping`` right after it must still get its ``pong``. The frames: text
that is not JSON, JSON that is not an object, every command with each field set to every wrong
type, unknown types, lone surrogates and NUL (as JSON escapes), frames nested deeper than any
parser's stack, frames over the size limit (below the socket's hard limit, where closing is
the protocol's answer), and ids that do not exist or belong to another user. Plus a seeded
random mix of those. Bounded and reproducible: the list is fixed, the mix uses a fixed seed.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Any, Iterator

import pytest
import websocket

from bestchat.testing.pytest_plugin import TEST_PG_URL, TEST_REDIS_URL
from tests.integration.stack import Stack

SEED = 20261206
RANDOM_FRAMES = int(os.environ.get("BESTCHAT_FUZZ_FRAMES", "150"))
MODES = ["embedded"] + (["production"] if TEST_PG_URL and TEST_REDIS_URL else [])
# The stack's WS_MAX_FRAME (tests/integration/stack.py); the socket server closes at 4 times it.
MAX_FRAME = 4096
COMMANDS: dict[str, tuple[str, ...]] = {
    "subscribe": ("conversation_id", "message_id", "after_seq"),
    "send": ("conversation_id", "content", "client_id", "model"),
    "cancel": ("message_id",),
    "typing": ("conversation_id",),
    "approve": ("execution_id", "decision", "remember"),
    "ping": (),
}
WRONG_VALUES: tuple[Any, ...] = (
    None, True, 0, -1, 2**64, -(2**70), 1.5, 1e308, [], ["x"], {}, {"a": 1}, "", " ", "x" * 3000,
    "\ud800", "a\x00b", "\udfff", "not-a-uuid", "00000000-0000-0000-0000-000000000000",
    "../../etc/passwd", "<script>alert(1)</script>",
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module", params=MODES)
def server(request, tmp_path_factory):
    """One web process; answers are generated in it (no Celery worker needed)."""
    production = request.param == "production"
    if production:
        request.getfixturevalue("pg_schema")
    stack = Stack(tmp_path_factory.mktemp(f"ws-fuzz-{request.param}"),
                  database_url=TEST_PG_URL if production else None,
                  redis_url=TEST_REDIS_URL if production else None)
    stack.env["BESTCHAT_JOBS_IN_PROCESS"] = "true"
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def ids(server) -> dict[str, str]:
    """The fuzzing user's token and objects, and another user's conversation and message."""
    alice, bob = server.new_user(f"alice-{uuid.uuid4().hex[:8]}@example.com"), \
        server.new_user(f"bob-{uuid.uuid4().hex[:8]}@example.com")
    found = {"token": alice.token}
    for name, user in (("own", alice), ("other", bob)):
        conversation = user.api("POST", "/conversations", json={"title": name}).json()["id"]
        sent = user.api("POST", f"/conversations/{conversation}/messages", json={"content": "hello"})
        assert sent.status_code == 202, sent.text
        found[f"{name}_conversation"] = conversation
        found[f"{name}_message"] = sent.json()["assistant_message"]["id"]
    return found


def _id_values(ids: dict[str, str]) -> tuple[str, ...]:
    return (ids["own_conversation"], ids["own_message"], ids["other_conversation"], ids["other_message"],
            str(uuid.UUID(int=0)), str(uuid.uuid5(uuid.NAMESPACE_DNS, "bestchat")))


def fixed_frames(ids: dict[str, str]) -> Iterator[str | bytes]:
    """Every malformed shape, each once."""
    yield from ("", "{", "}", "nul", "[1,2", '{"type": "ping"', "\x00", "{'type': 'ping'}", "NaN",
                '{"type": "ping"}{"type": "ping"}', '{"type": "ping", "type": 1}')
    yield b'{"type": "ping"}'  # a binary frame
    yield b"\xff\xfe\x00"
    for value in (None, 1, "ping", [], [{"type": "ping"}], True):
        yield json.dumps(value)
    for kind in (None, 1, 1.5, True, [], {}, "", "PING", "unknown", "x" * 2000, "\ud800", "a\x00b",
                 "__init__", "_handle", "run", "send "):
        yield json.dumps({"type": kind})
    for depth in (500, 1000, 2000):  # deeper than Python's recursion limit, within the frame limit
        yield '{"type": "send", "content": ' + "[" * depth + "]" * depth + "}"
        yield "[" * depth + "]" * depth
        yield '{"type": ' * (depth // 2) + "1" + "}" * (depth // 2)  # (10 bytes a level)
    yield json.dumps({"type": "send", "content": "x" * (MAX_FRAME + 1)})  # over the limit
    yield json.dumps({"type": "send", "content": "x" * (3 * MAX_FRAME)})  # under the hard limit
    for kind, names in COMMANDS.items():
        valid = _valid_fields(kind, ids)
        for name in names:
            for value in WRONG_VALUES + _id_values(ids):
                yield json.dumps({"type": kind, **valid, name: value})
        yield json.dumps({"type": kind})  # every field missing
        yield json.dumps({"type": kind, **valid, "extra": {"nested": [1, 2, {"\ud800": "\x00"}]}})


def _valid_fields(kind: str, ids: dict[str, str]) -> dict[str, Any]:
    return {
        "subscribe": {"conversation_id": ids["own_conversation"]},
        "send": {"conversation_id": ids["own_conversation"], "content": "hi"},
        "cancel": {"message_id": ids["own_message"]},
        "typing": {"conversation_id": ids["own_conversation"]},
        "approve": {"execution_id": str(uuid.uuid4()), "decision": "approve"},
        "ping": {},
    }[kind]


def random_frames(ids: dict[str, str], count: int, seed: int = SEED) -> Iterator[str]:
    """A seeded mix: random commands with random fields drawn from the wrong values and ids."""
    rng = random.Random(seed)
    names = sorted({name for fields in COMMANDS.values() for name in fields})
    values = WRONG_VALUES + _id_values(ids) + ("hello", 0, 5)
    for _ in range(count):
        frame: dict[str, Any] = {"type": rng.choice(sorted(COMMANDS))}
        for name in rng.sample(names, rng.randint(0, 4)):
            frame[name] = rng.choice(values)
        if rng.random() < 0.1:  # nested arrays, written by hand (json.dumps itself would recurse)
            depth = rng.randint(1, 3000)
            yield f'{{"type": "{frame["type"]}", "content": ' + "[" * depth + "]" * depth + "}"
        else:
            yield json.dumps(frame)


class Probe:
    """A socket that sends one frame, then a ping, and collects what came back up to the pong."""

    def __init__(self, url: str):
        self.url = url
        self.ws = websocket.create_connection(url, timeout=15)

    def exchange(self, frame: str | bytes) -> list[dict[str, Any]]:
        if isinstance(frame, bytes):
            self.ws.send_binary(frame)
        else:
            self.ws.send(frame)
        self.ws.send(json.dumps({"type": "ping"}))
        received = []
        while True:
            raw = self.ws.recv()
            if not raw:  # a close frame
                raise ConnectionError(f"closed by the server ({self.ws.status})")
            event = json.loads(raw)
            received.append(event)
            if event.get("type") == "pong":
                return received

    def reconnect(self) -> None:
        self.close()
        self.ws = websocket.create_connection(self.url, timeout=15)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already closed
            pass


def _fuzz(server, ids: dict[str, str], frames) -> tuple[int, list[str]]:
    probe = Probe(server.url().replace("http://", "ws://") + f"/ws?token={ids['token']}")
    failures: list[str] = []
    sent = 0
    try:
        for frame in frames:
            sent += 1
            shown = repr(frame[:300])
            try:
                received = probe.exchange(frame)
            except (websocket.WebSocketException, OSError, ValueError) as error:  # (ConnectionError is an OSError)
                failures.append(f"{shown}: socket failed ({type(error).__name__}: {error})")
                probe.reconnect()
                continue
            for event in received:
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    failures.append(f"{shown}: malformed server frame {event!r}")
                elif event["type"] == "error" and (event.get("code") == "internal_error"
                                                   or not isinstance(event.get("message"), str)):
                    failures.append(f"{shown}: {event!r}")
    finally:
        probe.close()
    return sent, failures


def test_malformed_frames_get_an_answer_or_an_error_frame_and_the_socket_stays_open(server, ids):
    sent, failures = _fuzz(server, ids, fixed_frames(ids))
    assert sent > 300
    assert not failures, f"{len(failures)} of {sent} frames failed:\n" + "\n".join(failures)


def test_a_seeded_random_mix_of_frames(server, ids):
    sent, failures = _fuzz(server, ids, random_frames(ids, RANDOM_FRAMES))
    assert sent == RANDOM_FRAMES
    assert not failures, f"{len(failures)} of {sent} frames failed:\n" + "\n".join(failures)


def test_the_random_mix_is_reproducible():
    ids = {"own_conversation": "c", "own_message": "m", "other_conversation": "oc", "other_message": "om"}
    assert list(random_frames(ids, 30)) == list(random_frames(ids, 30))


def test_another_users_ids_are_not_found(server, ids):
    """The frames naming another user's objects are refused like unknown ids."""
    probe = Probe(server.url().replace("http://", "ws://") + f"/ws?token={ids['token']}")
    try:
        for frame in ({"type": "subscribe", "conversation_id": ids["other_conversation"]},
                      {"type": "send", "conversation_id": ids["other_conversation"], "content": "hi"},
                      {"type": "cancel", "message_id": ids["other_message"]},
                      {"type": "subscribe", "conversation_id": ids["own_conversation"],
                       "message_id": ids["other_message"]}):
            errors = [event for event in probe.exchange(json.dumps(frame)) if event["type"] == "error"]
            assert [error["code"] for error in errors] == ["not_found"], (frame, errors)
    finally:
        probe.close()


def test_the_fuzzer_notices_a_closed_socket(server, ids):
    """The harness itself: a frame over the socket's hard limit closes the connection (the
    protocol's answer to it), and the fuzzer reports that instead of passing it over."""
    sent, failures = _fuzz(server, ids, [json.dumps({"type": "send", "content": "x" * (5 * MAX_FRAME)}),
                                         json.dumps({"type": "ping"})])
    assert sent == 2
    assert len(failures) == 1 and "socket failed" in failures[0], failures
