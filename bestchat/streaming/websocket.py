"""WebSocket frames of deliveries, and the write of every frame queued to one socket at once.

A delivery's text frame (RFC 6455: final, opcode text, unmasked as a server's, then the event's
JSON bytes) is built once per web process (:func:`text_frame`, through
:meth:`bestchat.streaming.bus.Delivery.encoded`) and written verbatim to every socket that
follows its conversation: the chunk that arrived on the bus as bytes leaves as the same bytes,
never decoded or encoded again per socket. :class:`FrameWriter` writes a batch of deliveries
(all those queued together: :meth:`bestchat.streaming.subscriber.Subscriber.next_batch`) in one
``sendall``.

That holds for a socket that negotiated no extension. A client that asked for
permessage-deflate (browsers do) has its frames compressed with its own connection's context,
so those go through ``simple_websocket``'s ``send``, one per delivery, as any other connection
object (the tests' in-process connection) does.
"""

from __future__ import annotations

from typing import Any

from simple_websocket import ConnectionClosed

from bestchat.streaming.bus import Delivery


def text_frame(delivery: Delivery) -> bytes:
    """The server's text frame carrying ``delivery``'s JSON."""
    payload = delivery.raw
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 65536:
        head = b"\x81\x7e" + size.to_bytes(2, "big")
    else:
        head = b"\x81\x7f" + size.to_bytes(8, "big")
    return head + payload


class FrameWriter:
    """Sends deliveries on one connection (``simple_websocket.Server`` or anything with its
    ``send(text)``)."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.sock = ws.sock if _plain_frames(ws) else None

    def write(self, deliveries: list[Delivery]) -> None:
        """Send ``deliveries`` in order: one write of their shared frames on a plain socket,
        else one ``send`` each. ``ConnectionClosed`` once the socket is gone."""
        if self.sock is None:
            for delivery in deliveries:
                self.ws.send(delivery.text)
            return
        if not self.ws.connected:  # (closed by either side: as simple_websocket's send says)
            raise ConnectionClosed(self.ws.close_reason, self.ws.close_message)
        data = b"".join([delivery.encoded(text_frame) for delivery in deliveries])
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise ConnectionClosed() from error


def _plain_frames(ws: Any) -> bool:
    """Whether ``ws`` is a ``simple_websocket`` connection whose frames are plain (no extension
    negotiated), so that a frame's bytes are the same on every such socket."""
    connection = getattr(getattr(ws, "ws", None), "connection", None)
    proto = getattr(connection, "_proto", None)  # wsproto's frame protocol of the connection
    return (getattr(ws, "sock", None) is not None and proto is not None
            and getattr(proto, "extensions", None) == [] and not getattr(proto, "client", True))
