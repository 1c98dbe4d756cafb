"""The stream bus (memory and Redis) and the Subscriber that makes replay + live exactly-once."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from bestchat.redis_client import get_redis
from bestchat.streaming import events, get_bus
from bestchat.streaming.bus import RESYNC, Delivery
from bestchat.streaming.memory_bus import MemoryBus
from bestchat.streaming.redis_bus import read_replies
from bestchat.streaming.subscriber import FINISHED_KEPT, Subscriber

CONV, MSG = "conv-1", "msg-1"


def chunk(seq: int, message_id: str = MSG) -> dict:
    return events.chunk(message_id=message_id, conversation_id=CONV, seq=seq, delta=f"<{seq}>")


def end(message_id: str = MSG) -> dict:
    return {"type": events.COMPLETED, "message_id": message_id, "conversation_id": CONV, "status": "complete"}


def drain(subscriber: Subscriber) -> list[dict]:
    out = []
    while (delivery := subscriber.next(timeout=0)) is not None:
        out.append(delivery.event)
    return out


def append(bus, *chunks: dict) -> None:
    """Chunks, as the frame writer publishes them."""
    bus.append_many([(CONV, event["message_id"], event) for event in chunks])


class FlakyBus(MemoryBus):
    """A memory bus whose live delivery can drop out and come back, as the Redis bus's does
    across a reconnect: then it tells every listener to resynchronise (:data:`RESYNC`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.live = True
        self.listeners = []

    def subscribe(self, conversation_id, listener):
        self.listeners.append(listener)
        return super().subscribe(conversation_id, lambda delivery: self.live and listener(delivery))

    def reconnect(self):
        self.live = True
        for listener in self.listeners:
            listener(RESYNC)


def test_streams_replay_from_any_seq(app):
    bus = get_bus(app)
    append(bus, chunk(1), chunk(2), chunk(3))
    assert [d.event["seq"] for d in bus.replay(MSG)] == [1, 2, 3]
    assert [d.event["seq"] for d in bus.replay(MSG, 2)] == [3]
    assert bus.append_final(CONV, MSG, end()) is None
    assert [d.event["type"] for d in bus.replay(MSG, 3)] == [events.COMPLETED]
    assert bus.replay("unknown") == []
    assert all(d.text.startswith("{") for d in bus.replay(MSG))


def test_a_batch_of_frames_of_several_answers_lands_in_order_in_each_stream(app, backend):
    bus = get_bus(app)
    subscriber = Subscriber(bus) if backend == "embedded" else None  # live delivery: memory bus
    if subscriber is not None:
        subscriber.follow(CONV)
    bus.append_many([(CONV, MSG, chunk(1)), (CONV, "msg-2", chunk(1, "msg-2")), (CONV, MSG, chunk(2))])
    bus.append_many([(CONV, MSG, chunk(3))])
    assert [d.event["delta"] for d in bus.replay(MSG)] == ["<1>", "<2>", "<3>"]
    assert [d.seq for d in bus.replay("msg-2")] == [1]
    if subscriber is not None:
        assert [(e["message_id"], e["seq"]) for e in drain(subscriber)] == [
            (MSG, 1), ("msg-2", 1), (MSG, 2), (MSG, 3)]
    else:  # the first chunk gives the stream its orphan expiry
        assert bus.redis.ttl(f"bc:stream:{MSG}") > app.config["STREAM_TTL"]


def test_relayed_deliveries_route_without_parsing_and_parse_on_demand():
    delivery = Delivery.from_wire(Delivery.of(chunk(7), origin="tab-1").wire())
    assert (delivery.kind, delivery.message_id, delivery.seq, delivery.origin) == ("chunk", MSG, 7, "tab-1")
    assert delivery.text == Delivery.of(chunk(7)).text and delivery.event == chunk(7)
    created = Delivery.from_wire(Delivery.of({"type": "message.created", "message": {"id": "m9"}}).wire())
    assert (created.kind, created.message_id, created.seq, created.origin) == ("message.created", "m9", 0, None)
    error = Delivery.of({"type": "error", "code": "x", "message": "a string, not a message"})
    assert error.message_id is None


def test_cancel_flags(app):
    bus = get_bus(app)
    assert not bus.cancel_requested(MSG)
    append(bus, chunk(1))
    bus.request_cancel(MSG)
    assert bus.cancel_requested(MSG)
    append(bus, chunk(2))
    assert bus.cancel_requested(MSG)
    bus.append_final(CONV, MSG, end())
    assert [d.event["type"] for d in bus.replay(MSG)][-1] == end()["type"]
    assert not bus.cancel_requested(MSG)  # cleared when the message ends


def test_broadcasts_reach_followers_in_order_and_are_not_stored(app, backend):
    if backend != "embedded":
        pytest.skip("live delivery in this un-patched test process: the memory bus")
    bus = get_bus(app)
    subscriber = Subscriber(bus)
    subscriber.follow(CONV)
    created = [{"type": events.CREATED, "conversation_id": CONV, "message": {"id": name}} for name in ("q", "a")]
    bus.broadcast_many(CONV, created)
    bus.broadcast(CONV, {"type": events.TYPING, "conversation_id": CONV})
    assert drain(subscriber) == [*created, {"type": events.TYPING, "conversation_id": CONV}]
    assert bus.replay("q") == [] and bus.replay("a") == []


def test_redis_streams_are_capped_and_expire_after_the_end(app, backend):
    if backend != "production":
        pytest.skip("Redis only")
    bus = get_bus(app)
    append(bus, chunk(1))
    orphan_ttl = bus.redis.ttl(f"bc:stream:{MSG}")
    bus.append_final(CONV, MSG, end())
    assert 0 < bus.redis.ttl(f"bc:stream:{MSG}") <= app.config["STREAM_TTL"] < orphan_ttl


def test_relaying_pubsub_messages_keeps_no_memory(app, backend):
    """The web process's reader relays every chunk of every answer it serves through one
    pub/sub connection, read raw (:func:`read_replies`) into deliveries: relaying must hold on
    to nothing. (With redis-py 8's default RESP3, hiredis 3.3 keeps part of each message for
    good: see bestchat.redis_client.PROTOCOL.)"""
    if backend != "production":
        pytest.skip("Redis only")
    client = get_redis(app)
    connection = get_bus(app)._pubsub_connection("bestchat-test-relay")
    connection.connect()
    connection.send_command("SUBSCRIBE", "bc:test:relay")
    replies = read_replies(connection)
    assert next(replies)[0] == b"subscribe"

    def relay(count: int) -> None:
        for index in range(count):
            client.publish("bc:test:relay", f"- chunk m {index} " + "x" * 60)
            kind, channel, data = next(replies)
            delivery = Delivery.from_raw(data)
            assert (kind, channel) == (b"message", b"bc:test:relay")
            assert (delivery.kind, delivery.seq, delivery.raw) == ("chunk", index, b"x" * 60)

    relay(500)  # (caches and buffers settle first)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        relay(5000)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        connection.disconnect()
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert kept < 50_000, f"{kept} bytes kept after relaying 5000 messages"


def test_memory_bus_delivers_live_in_order_and_forgets_ended_streams():
    bus = MemoryBus(maxlen=3, ttl=0)
    got: list[Delivery] = []
    unsubscribe = bus.subscribe(CONV, got.append)
    for seq in range(1, 6):
        append(bus, chunk(seq))
    assert [d.event["seq"] for d in got] == [1, 2, 3, 4, 5]
    assert [d.event["seq"] for d in bus.replay(MSG)] == [3, 4, 5]  # capped
    bus.broadcast(CONV, {"type": "typing"}, origin="me")
    assert got[-1].origin == "me"
    unsubscribe()
    bus.append_final(CONV, MSG, end())
    assert len(got) == 6
    bus._next_prune = 0
    append(bus, chunk(1, "other"))
    assert bus.replay(MSG) == []  # expired (ttl 0)


def test_subscriber_resume_then_live_is_exactly_once():
    bus = MemoryBus(maxlen=100, ttl=60)
    append(bus, chunk(1), chunk(2), chunk(3))
    subscriber = Subscriber(bus)
    subscriber.resume(CONV, MSG, after_seq=1)
    append(bus, chunk(4))
    append(bus, chunk(3))  # a late duplicate
    bus.append_final(CONV, MSG, end())
    bus.broadcast(CONV, end())  # a repeated terminal event
    assert [(e["type"], e.get("seq")) for e in drain(subscriber)] == [
        ("chunk", 2), ("chunk", 3), ("chunk", 4), (events.COMPLETED, None)]
    subscriber.close()
    append(bus, chunk(5))
    assert drain(subscriber) == []


def test_live_events_during_a_replay_are_held_back():
    class RacyBus(MemoryBus):
        """Publishes the next chunk while the replay is being read, as Redis could."""

        def replay(self, message_id, after_seq=0):
            result = super().replay(message_id, after_seq)
            append(self, chunk(3))
            return result

    bus = RacyBus(maxlen=100, ttl=60)
    append(bus, chunk(1), chunk(2))
    subscriber = Subscriber(bus)
    subscriber.resume(CONV, MSG, after_seq=0)
    assert [e["seq"] for e in drain(subscriber)] == [1, 2, 3]


def test_subscriber_skips_its_own_typing_and_sends_final_when_stream_expired():
    bus = MemoryBus(maxlen=100, ttl=60)
    me, other = Subscriber(bus), Subscriber(bus)
    me.follow(CONV)
    other.follow(CONV)
    bus.broadcast(CONV, events.typing(CONV, {"id": "u"}), origin=me.id)
    assert drain(me) == [] and [e["type"] for e in drain(other)] == ["typing"]

    late = Subscriber(bus)
    late.resume(CONV, "gone", after_seq=0, final=end("gone"))
    assert [e["type"] for e in drain(late)] == [events.COMPLETED]


def test_resync_replays_unfinished_messages():
    bus = FlakyBus(maxlen=100, ttl=60)
    subscriber = Subscriber(bus)
    subscriber.follow(CONV)
    append(bus, chunk(1))
    assert [e["seq"] for e in drain(subscriber)] == [1]
    bus.live = False
    append(bus, chunk(2))  # stored, but not delivered live
    assert drain(subscriber) == []
    bus.reconnect()
    assert [e["seq"] for e in drain(subscriber)] == [2]
    append(bus, chunk(3))
    assert [e["seq"] for e in drain(subscriber)] == [3]


def test_a_long_lived_connection_remembers_little_of_ended_answers():
    """A socket open for thousands of answers: of an ended answer the subscriber keeps no
    position (a reconnect replays none of them), and it remembers only the last FINISHED_KEPT
    ended ids, whose late chunks (a replay racing the live stream) it still drops."""
    bus = FlakyBus(maxlen=100, ttl=60)
    subscriber = Subscriber(bus)
    subscriber.follow(CONV)
    total = FINISHED_KEPT + 500
    for index in range(total):
        message_id = f"m{index}"
        append(bus, chunk(1, message_id))
        bus.append_final(CONV, message_id, end(message_id))
        append(bus, chunk(1, message_id))  # late duplicates
        bus.broadcast(CONV, end(message_id))
    sent = drain(subscriber)
    assert len(sent) == 2 * total  # each chunk and end exactly once
    assert [e["type"] for e in sent[:2]] == ["chunk", events.COMPLETED]

    bus.reconnect()
    assert drain(subscriber) == []
    remembered, forgotten = f"m{total - FINISHED_KEPT}", f"m{total - FINISHED_KEPT - 1}"
    append(bus, chunk(1, remembered), chunk(1, forgotten))
    assert [e["message_id"] for e in drain(subscriber)] == [forgotten]
    subscriber.close()


def test_live_chunks_queued_behind_a_resync_go_out_after_what_it_replays():
    """After a reconnect the reader queues RESYNC and, before the client's writer runs, the
    first live chunks behind it: the replay of what was missed still goes out first, and each
    chunk exactly once."""
    bus = FlakyBus(maxlen=100, ttl=60)
    subscriber = Subscriber(bus)
    subscriber.follow(CONV)
    append(bus, chunk(1))
    assert [d.seq for d in subscriber.next_batch(timeout=0)] == [1]
    bus.live = False
    append(bus, chunk(2), chunk(3))  # stored, not delivered live
    bus.reconnect()
    append(bus, chunk(4))  # live again, queued behind the RESYNC
    bus.append_final(CONV, MSG, end())
    sent = subscriber.next_batch(timeout=0) + subscriber.next_batch(timeout=0)
    assert [(d.kind, d.seq) for d in sent] == [("chunk", 2), ("chunk", 3), ("chunk", 4), (events.COMPLETED, 0)]
