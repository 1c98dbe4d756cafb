"""End to end over real processes: gunicorn (gevent) web processes, and in production mode
real Celery workers with PostgreSQL and Redis; clients speak WebSocket and HTTP/SSE.

Each mode starts its processes once for the module. Timeouts are safety bounds only.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
import redis
import websocket

from tests.integration.stack import terminal, wait_for

pytestmark = pytest.mark.integration

PRODUCTION_WEB_PROCESSES = 2  # every event must reach sockets on either process
SLOW = 15  # demo words per second: an answer of ~25 words takes ~2 s


def chat(socket, conversation_id, content, client_id="c1"):
    """Send ``content`` and collect everything up to the answer's end."""
    socket.send(type="send", conversation_id=conversation_id, content=content, client_id=client_id)
    created = socket.until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
    answer_id = created[-1]["message"]["id"]
    frames = created + socket.until(lambda f: terminal(f, answer_id))
    return answer_id, frames


def text_of(frames, answer_id):
    parts = [f for f in frames if f["type"] == "chunk" and f["message_id"] == answer_id]
    assert [f["seq"] for f in parts] == list(range(parts[0]["seq"], parts[0]["seq"] + len(parts)))
    return "".join(f["delta"] for f in parts), parts


def test_chat_over_websocket(stack, alice):
    conversation_id = alice.conversation()
    socket = alice.socket()
    try:
        socket.subscribe(conversation_id)
        answer_id, frames = chat(socket, conversation_id, "hello over the socket")
        question = next(f for f in frames if f["type"] == "message.created" and f["message"]["role"] == "user")
        assert question["client_id"] == "c1" and question["message"]["content"] == "hello over the socket"
        text, parts = text_of(frames, answer_id)
        assert parts[0]["seq"] == 1
        assert frames[-1]["type"] == "message.completed" and frames[-1]["status"] == "complete"
        assert frames[-1]["usage"]["completion_tokens"] > 0
        stored = alice.api("GET", f"/messages/{answer_id}").json()
        assert stored["status"] == "complete" and stored["content"] == text and stored["last_seq"] == len(parts)
        assert 'You said: "hello over the socket"' in text
    finally:
        socket.close()


def test_readyz_counts_the_generation_slots(stack, alice):
    """Production: the Celery worker registered its ``-c 50`` slots in Redis; embedded: the
    in-process pool's ``JOBS_CONCURRENCY``. A finished answer gives its slot back."""
    def generation():
        return httpx.get(f"{stack.url()}/readyz", timeout=10).json()["generation"]

    assert generation()["capacity"] == (50 if stack.workers else 100)
    conversation_id = alice.conversation()
    socket = alice.socket()
    try:
        socket.subscribe(conversation_id)
        assert chat(socket, conversation_id, "count me")[1][-1]["type"] == "message.completed"
    finally:
        socket.close()
    wait_for(lambda: generation()["in_flight"] == 0, what="the finished answer to release its slot")


def test_resume_after_reconnect_is_exact(stack, alice):
    conversation_id = alice.conversation(SLOW)
    first = alice.socket()
    try:
        first.subscribe(conversation_id)
        first.send(type="send", conversation_id=conversation_id, content="please answer slowly now", client_id="r")
        created = first.until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
        answer_id = created[-1]["message"]["id"]
        seen = first.until(lambda f: f["type"] == "chunk" and f["seq"] == 3)
    finally:
        first.close()
    received = "".join(f["delta"] for f in seen if f["type"] == "chunk")
    time.sleep(0.3)  # chunks keep coming while nobody listens
    second = alice.socket(web=len(stack.webs) - 1)
    try:
        second.send(type="subscribe", conversation_id=conversation_id, message_id=answer_id, after_seq=3)
        frames = second.until(lambda f: terminal(f, answer_id))
    finally:
        second.close()
    rest, parts = text_of(frames, answer_id)
    assert parts[0]["seq"] == 4
    assert frames[-1]["status"] == "complete"
    assert received + rest == alice.api("GET", f"/messages/{answer_id}").json()["content"]

    finished = alice.socket()  # resuming a finished answer replays it too
    try:
        finished.send(type="subscribe", conversation_id=conversation_id, message_id=answer_id, after_seq=0)
        replay = finished.until(lambda f: terminal(f, answer_id))
    finally:
        finished.close()
    assert text_of(replay, answer_id)[0] == received + rest


def test_every_socket_of_the_conversation_gets_every_event(stack, alice):
    assert len(stack.webs) == (PRODUCTION_WEB_PROCESSES if stack.redis_url else 1)
    conversation_id = alice.conversation(SLOW)
    sockets = [alice.socket(web=i % len(stack.webs)) for i in range(3)]
    try:
        for socket in sockets:
            socket.subscribe(conversation_id)
        sockets[1].send(type="typing", conversation_id=conversation_id)
        typing = sockets[0].until(lambda f: f["type"] == "typing", ignore_typing=False)[-1]
        assert typing["conversation_id"] == conversation_id and "id" in typing["user"]
        answer_id, frames = chat(sockets[0], conversation_id, "two tabs and two processes")
        texts = [text_of(frames, answer_id)[0]]
        for socket in sockets[1:]:
            texts.append(text_of(socket.until(lambda f: terminal(f, answer_id)), answer_id)[0])
        assert len(set(texts)) == 1 and texts[0]
        sockets[1].sync()  # the typing sender never gets its own typing event
    finally:
        for socket in sockets:
            socket.close()


def test_a_web_process_subscribes_to_the_conversations_it_serves_and_again_after_losing_redis(stack, alice):
    """Production: each web process's reader holds a SUBSCRIBE per conversation its sockets
    follow (not a pattern over all of them), subscribes again after its connection is lost
    (the chat goes on), and unsubscribes when the last socket leaves."""
    if not stack.redis_url:
        pytest.skip("the Redis bus only")
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)

    def subscribers(conversation_id: str) -> int:
        return client.pubsub_numsub(f"bc:conv:{conversation_id}")[0][1]

    followed, other = alice.conversation(), alice.conversation()
    socket = alice.socket(web=0)
    try:
        socket.subscribe(followed)
        assert (subscribers(followed), subscribers(other)) == (1, 0)  # one web process, one channel
        readers = [c["id"] for c in client.client_list(_type="pubsub") if c["name"] == "bestchat-bus-reader"]
        assert 1 <= len(readers) <= len(stack.webs)  # (a process starts its reader with its first socket)
        for reader in readers:
            client.client_kill_filter(_id=reader)
        wait_for(lambda: subscribers(followed) == 1, what="the reader to subscribe again")
        answer_id, frames = chat(socket, followed, "after the reconnect")
        assert frames[-1]["type"] == "message.completed" and text_of(frames, answer_id)[0]
    finally:
        socket.close()
    wait_for(lambda: subscribers(followed) == 0, what="the channel to be unsubscribed")


def test_an_answer_whose_web_process_loses_redis_mid_stream_arrives_exactly_once(stack, alice):
    """Production: the reader's pub/sub connection is killed while an answer streams; both
    sockets following it on that web process still get every chunk once, in order (the
    resynchronisation replays what the reconnect missed, the shared frames go to both)."""
    if not stack.redis_url:
        pytest.skip("the Redis bus only")
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    conversation_id = alice.conversation(SLOW)
    sockets = [alice.socket(web=0), alice.socket(web=0)]
    try:
        for socket in sockets:
            socket.subscribe(conversation_id)
        sockets[0].send(type="send", conversation_id=conversation_id, client_id="c1",
                        content="an answer long enough to lose Redis in the middle of it")
        received = [sockets[0].until(lambda f: f["type"] == "chunk"), []]
        answer_id = received[0][-1]["message_id"]
        for reader in [c["id"] for c in client.client_list(_type="pubsub") if c["name"] == "bestchat-bus-reader"]:
            client.client_kill_filter(_id=reader)
        for index, socket in enumerate(sockets):
            received[index] += socket.until(lambda f: terminal(f, answer_id))
        stored = alice.api("GET", f"/messages/{answer_id}").json()
        for frames in received:
            text, parts = text_of(frames, answer_id)  # (each seq once, in order)
            assert frames[-1]["type"] == "message.completed"
            assert parts[0]["seq"] == 1 and parts[-1]["seq"] == stored["last_seq"] and text == stored["content"]
    finally:
        for socket in sockets:
            socket.close()


def test_deleting_a_conversation_reaches_its_other_sockets(stack, alice):
    conversation_id = alice.conversation()
    watcher = alice.socket(web=len(stack.webs) - 1)
    try:
        watcher.subscribe(conversation_id)
        assert alice.api("DELETE", f"/conversations/{conversation_id}").status_code == 204
        frame = watcher.until(lambda f: f["type"] == "conversation.deleted")[-1]
        assert frame["conversation_id"] == conversation_id
    finally:
        watcher.close()


def test_cancel_stops_within_one_chunk(stack, alice):
    conversation_id = alice.conversation(SLOW)
    socket = alice.socket()
    try:
        socket.subscribe(conversation_id)
        socket.send(type="send", conversation_id=conversation_id, content="this will be cancelled soon enough")
        created = socket.until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
        answer_id = created[-1]["message"]["id"]
        socket.until(lambda f: f["type"] == "chunk" and f["seq"] == 2)
        socket.send(type="cancel", message_id=answer_id)
        frames = socket.until(lambda f: terminal(f, answer_id))
    finally:
        socket.close()
    assert frames[-1]["type"] == "message.completed" and frames[-1]["status"] == "cancelled"
    assert frames[-1]["last_seq"] <= 4  # a chunk may have been on its way
    stored = alice.api("GET", f"/messages/{answer_id}").json()
    assert stored["status"] == "cancelled" and stored["last_seq"] == frames[-1]["last_seq"]
    assert "Configure a real provider" not in stored["content"]


def test_sse_resumes_with_last_event_id(stack, alice):
    conversation_id = alice.conversation(SLOW)
    body = alice.api("POST", f"/conversations/{conversation_id}/messages", json={"content": "stream me please"})
    assert body.status_code == 202
    answer_id = body.json()["assistant_message"]["id"]
    assert body.json()["assistant_message"]["status"] == "pending"
    received, last_id = "", None
    with alice.http() as http, http.stream("GET", f"/api/v1/messages/{answer_id}/stream") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in _sse_events(response):
            received += event["data"]["delta"]
            last_id = event["id"]
            if int(last_id) == 3:
                break
    events = []
    with alice.http(web=len(stack.webs) - 1) as http, http.stream(
            "GET", f"/api/v1/messages/{answer_id}/stream", headers={"Last-Event-ID": last_id}) as response:
        events = list(_sse_events(response))
    assert [e["event"] for e in events][-1] == "message.completed"
    chunks = [e for e in events if e["event"] == "chunk"]
    assert [int(e["id"]) for e in chunks] == list(range(4, 4 + len(chunks)))
    received += "".join(e["data"]["delta"] for e in chunks)
    assert received == alice.api("GET", f"/messages/{answer_id}").json()["content"]


def _sse_events(response):
    event: dict = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                yield event
                if event["event"] in ("message.completed", "message.failed"):
                    return
            event = {}
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(": ")
            name = name.rstrip(":")
            event[name] = json.loads(value) if name == "data" else value


def test_bad_frames_get_errors_and_the_socket_stays_usable(stack, alice):
    socket = alice.socket()
    try:
        cases = [
            ("{not json", "invalid_json"),
            ("[1, 2]", "invalid_frame"),
            (json.dumps({"type": "dance"}), "unknown_type"),
            (json.dumps({"type": "send", "content": "no conversation"}), "missing_field"),
            (json.dumps({"type": "subscribe", "conversation_id": 12}), "invalid_field"),
            (json.dumps({"type": "ping", "pad": "x" * 5000}), "frame_too_large"),
        ]
        for raw, code in cases:
            socket.ws.send(raw)
            frame = socket.recv()
            assert frame["type"] == "error" and frame["code"] == code, (raw[:40], frame)
        socket.ws.send_binary(b"\x00\x01")
        assert socket.recv()["code"] == "invalid_frame"
        socket.sync()
        conversation_id = alice.conversation()
        socket.subscribe(conversation_id)
        answer_id, frames = chat(socket, conversation_id, "still works")
        assert frames[-1]["type"] == "message.completed"
    finally:
        socket.close()


def test_other_users_and_anonymous_are_refused(stack, alice):
    conversation_id = alice.conversation()
    mallory = stack.new_user(f"mallory-{time.monotonic_ns()}@example.com")
    socket = mallory.socket()
    try:
        for frame in ({"type": "subscribe", "conversation_id": conversation_id},
                      {"type": "send", "conversation_id": conversation_id, "content": "hi", "client_id": "x"},
                      {"type": "typing", "conversation_id": conversation_id},
                      {"type": "subscribe", "conversation_id": "not-a-uuid"}):
            socket.send(**frame)
            error = socket.recv()
            assert error["type"] == "error" and error["code"] == "not_found", error
        socket.sync()
    finally:
        socket.close()
    assert mallory.api("GET", f"/conversations/{conversation_id}").status_code == 404
    response = mallory.api("POST", f"/conversations/{conversation_id}/messages", json={"content": "x"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert alice.api("GET", f"/conversations/{conversation_id}/messages").json()["messages"] == []
    url = stack.url().replace("http://", "ws://") + "/ws"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=10)
    assert refused.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(url + "?token=bc_wrong", timeout=10)


def test_killed_mid_answer_leaves_the_message_interrupted(stack, alice):
    """Production: SIGKILL the Celery worker; a web process's reaper marks the message
    interrupted and the socket is told. Embedded: SIGKILL the web process (the job lived in
    it); the restarted process reaps it at startup."""
    conversation_id = alice.conversation(SLOW)
    embedded = not stack.workers
    socket = alice.socket(web=len(stack.webs) - 1)
    try:
        socket.subscribe(conversation_id)
        socket.send(type="send", conversation_id=conversation_id, content="this answer will be cut off midway")
        created = socket.until(lambda f: f["type"] == "message.created" and f["message"]["role"] == "assistant")
        answer_id = created[-1]["message"]["id"]
        # embedded: past the first partial save (its stream lived in the killed process's memory)
        cut = 12 if embedded else 3
        seen = socket.until(lambda f: f["type"] == "chunk" and f["seq"] == cut)
        if embedded:
            port = stack.kill_web()
            socket.close()
            stack.start_web(port)
        else:
            # kombu's ack emulation is off: no record of the running job in Redis (a round trip
            # fewer before each job starts); the reaper, not a redelivery, ends the answer
            assert not redis.Redis.from_url(stack.redis_url).exists("unacked", "unacked_index")
            stack.kill_worker()
            frames = socket.until(lambda f: terminal(f, answer_id))
            assert frames[-1]["type"] == "message.failed" and frames[-1]["error"]["code"] == "interrupted"
        stored = wait_for(lambda: (m := alice.api("GET", f"/messages/{answer_id}").json())["status"] != "streaming" and m,
                          what="the message to leave streaming")
    finally:
        socket.close()
        if not embedded:
            stack.start_worker()
    assert stored["status"] == "interrupted" and stored["error"]
    prefix = "".join(f["delta"] for f in seen if f["type"] == "chunk")
    if embedded:  # what was saved before the kill
        assert stored["content"] and prefix.startswith(stored["content"])
    else:  # rebuilt from the stream: at least everything the client saw
        assert stored["content"].startswith(prefix) and stored["last_seq"] >= cut
    assert not stored["content"].endswith("real answers.")
    later = alice.socket()
    try:  # the next message works again
        later.subscribe(conversation_id)
        assert chat(later, conversation_id, "are you back?")[1][-1]["type"] == "message.completed"
    finally:
        later.close()
