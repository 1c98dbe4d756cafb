"""The stream bus: how generation events travel from workers to every subscribed client.

``init_bus(app)`` picks the implementation once, at app start (Redis Streams + pub/sub
whenever ``REDIS_URL`` is set, in-memory in embedded mode); ``get_bus()`` returns it. Event
shapes live in :mod:`.events`; each process's frame writer, which turns the text of the
generations it runs into ``chunk`` events, in :mod:`.frame_writer`.
"""

from bestchat.streaming.bus import Delivery, StreamBus, get_bus, init_bus

__all__ = ["Delivery", "StreamBus", "get_bus", "init_bus"]
