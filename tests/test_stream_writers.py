"""The writers of followed answers: frames encoded once and shared, what arrived together
written together (WebSocket and SSE), and ``/v1`` chunks built without parsing the event."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage
from wsproto.extensions import PerMessageDeflate

from bestchat.api.messages import _event as rest_sse_event
from bestchat.openai_compat import replies
from bestchat.streaming import events, sse
from bestchat.streaming.bus import Delivery
from bestchat.streaming.memory_bus import MemoryBus
from bestchat.streaming.subscriber import Subscriber
from bestchat.streaming.websocket import FrameWriter, text_frame

CONV, MSG = "c0ffee00-0000-4000-8000-000000000001", "c0ffee00-0000-4000-8000-000000000002"


def chunk(seq: int, delta: str | None = None) -> dict:
    return events.chunk(message_id=MSG, conversation_id=CONV, seq=seq, delta=f"<{seq}>" if delta is None else delta)


def end() -> dict:
    return {"type": events.COMPLETED, "message_id": MSG, "conversation_id": CONV, "status": "complete",
            "last_seq": 3, "message": {"id": MSG, "content": "<1><2><3>", "parts": None}, "usage": {}}


def relayed(event: dict) -> Delivery:
    """``event`` as the Redis bus's reader hands it over: bytes off the wire, unparsed."""
    return Delivery.from_raw(Delivery.of(event).wire().encode())


def sse_events(data: bytes) -> list[dict[str, str]]:
    """The SSE events in ``data`` (comments left out), each as its fields."""
    return [dict(line.split(": ", 1) for line in block.splitlines())
            for block in data.decode().split("\n\n") if block and not block.startswith(":")]


# ---- deliveries ---------------------------------------------------------------------------------

def test_a_relayed_delivery_routes_without_parsing_and_keeps_its_bytes():
    delivery = relayed(chunk(7, "héllo \"world\""))
    assert (delivery.kind, delivery.message_id, delivery.seq) == ("chunk", MSG, 7)
    assert delivery._event is None and delivery._text is None  # nothing decoded to route it
    assert delivery.raw == Delivery.of(chunk(7, "héllo \"world\"")).text.encode()
    assert delivery.event == chunk(7, "héllo \"world\"")


def test_what_a_writer_derives_from_a_delivery_is_built_once():
    delivery, calls = relayed(chunk(1)), []

    def encode(d: Delivery) -> bytes:
        calls.append(d)
        return b"frame"

    assert [delivery.encoded(encode) for _ in range(3)] == [b"frame"] * 3
    assert len(calls) == 1


# ---- WebSocket ----------------------------------------------------------------------------------

class Peer:
    """A connected server socket as ``simple_websocket`` holds it, and its client end."""

    def __init__(self, extensions=None):
        server, self.client = socket.socketpair()
        connection = Connection(ConnectionType.SERVER, extensions=extensions)
        self.ws = SimpleNamespace(sock=server, ws=SimpleNamespace(connection=connection), connected=True,
                                  close_reason=None, close_message=None, sent=[])
        self.ws.send = self.ws.sent.append

    def received(self) -> bytes:
        self.client.settimeout(5)
        return self.client.recv(65536)

    def messages(self, data: bytes) -> list[str]:
        reader = Connection(ConnectionType.CLIENT)
        reader.receive_data(data)
        return [event.data for event in reader.events() if isinstance(event, TextMessage)]


def test_a_frame_forwarded_to_two_sockets_is_the_same_bytes_a_websocket_library_sends():
    deliveries = [relayed(chunk(1)), relayed(chunk(2, "x" * 300)), relayed(end())]
    peers = [Peer(), Peer()]
    for peer in peers:
        FrameWriter(peer.ws).write(deliveries)
    data = [peer.received() for peer in peers]
    expected = b"".join(Connection(ConnectionType.SERVER).send(TextMessage(data=d.text)) for d in deliveries)
    assert data[0] == data[1] == expected
    assert [json.loads(text) for text in peers[0].messages(data[0])] == [chunk(1), chunk(2, "x" * 300), end()]
    assert deliveries[0].encoded(text_frame) is deliveries[0].encoded(text_frame)  # built once


def test_a_socket_that_negotiated_compression_gets_its_own_frames():
    deflate = PerMessageDeflate()
    deflate.accept("permessage-deflate")  # (as the handshake with a browser negotiates it)
    peer = Peer(extensions=[deflate])
    FrameWriter(peer.ws).write([relayed(chunk(1)), relayed(chunk(2))])
    assert [json.loads(text) for text in peer.ws.sent] == [chunk(1), chunk(2)]


def test_a_closed_socket_is_not_written():
    from simple_websocket import ConnectionClosed

    peer = Peer()
    peer.ws.connected = False
    with pytest.raises(ConnectionClosed):
        FrameWriter(peer.ws).write([relayed(chunk(1))])


# ---- what arrived together ----------------------------------------------------------------------

def test_a_batch_is_everything_queued_in_order_each_chunk_once():
    bus = MemoryBus(maxlen=100, ttl=60)
    subscriber = Subscriber(bus)
    subscriber.follow(CONV)
    bus.append_many([(CONV, MSG, chunk(seq)) for seq in (1, 2, 3)])
    bus.append_many([(CONV, MSG, chunk(2))])  # a late duplicate
    bus.append_final(CONV, MSG, end())
    assert [(d.kind, d.seq) for d in subscriber.next_batch(timeout=0)] == [
        ("chunk", 1), ("chunk", 2), ("chunk", 3), (events.COMPLETED, 0)]
    assert subscriber.next_batch(timeout=0) == []


def test_rest_sse_writes_what_arrived_together_as_one_piece_of_separate_events():
    bus = MemoryBus(maxlen=100, ttl=60)
    subscriber = Subscriber(bus)
    subscriber.resume(CONV, MSG, 0)
    stream = sse.answer_stream(subscriber, MSG, rest_sse_event, first=[sse.retry(1000)])
    assert next(stream) == b"retry: 1000\n\n"
    bus.append_many([(CONV, MSG, chunk(seq)) for seq in (1, 2, 3)])
    bus.append_final(CONV, MSG, end())
    piece = next(stream)
    assert [(e.get("id"), e["event"], json.loads(e["data"])) for e in sse_events(piece)] == [
        ("1", "chunk", chunk(1)), ("2", "chunk", chunk(2)), ("3", "chunk", chunk(3)),
        (None, events.COMPLETED, end())]
    assert list(stream) == []  # the stream ends with the answer


def test_rest_sse_bytes_are_the_frames_of_the_contract():
    for event in (chunk(4, "é\n\"q\""), end()):
        (data,) = rest_sse_event(relayed(event))
        seq = event["seq"] if event["type"] == events.CHUNK else None
        assert data == sse.frame(Delivery.of(event).text, event=event["type"], id=seq).encode()


# ---- /v1 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("delta", ["plain", "é ünïcode 🎉", 'quotes " and \\ and \n and ,"seq":1,"delta":'])
@pytest.mark.parametrize("include_usage", [False, True])
def test_a_v1_chunk_is_the_object_the_sdk_reads_without_parsing_the_event(delta, include_usage):
    completion = replies.Completion("chatcmpl-1", 1700000000, "openai/model")
    content_chunk = replies._content_chunk(completion, include_usage)
    delivery = relayed(chunk(12, delta))
    data = content_chunk(delivery.encoded(replies._delta_json))
    assert delivery._event is None  # (not parsed)
    expected = replies._data(completion.chunk({"content": delta}, with_usage=include_usage))
    assert data == expected.encode()


def test_a_chunk_of_another_shape_is_still_streamed_right():
    odd = Delivery(None, json.dumps({"delta": "x", "type": "chunk", "seq": 3, "message_id": MSG}),
                   kind="chunk", message_id=MSG, seq=3)
    assert events.chunk_delta_json(odd.raw, 3) is None
    completion = replies.Completion("chatcmpl-2", 1, "open\x00ai")  # the marker in the model's name
    data = replies._content_chunk(completion, False)(odd.encoded(replies._delta_json))
    assert json.loads(data.decode().removeprefix("data: "))["choices"][0]["delta"] == {"content": "x"}
    assert json.loads(data.decode().removeprefix("data: "))["model"] == "open\x00ai"
