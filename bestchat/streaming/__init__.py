"""The stream bus: how generation events travel from workers to every subscribed client.

``init_bus(app)`` picks the implementation (Redis Streams + pub/sub in production, in-memory
in embedded mode); ``get_bus()`` returns it. Event shapes live in :mod:`.events`.
"""

from bestchat.streaming.bus import Delivery, StreamBus, get_bus, init_bus

__all__ = ["Delivery", "StreamBus", "get_bus", "init_bus"]
