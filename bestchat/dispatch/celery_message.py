"""A Celery task message as the Redis broker holds it, built here without kombu's producer.

What ``celery.send_task(name, args=args)`` puts on a Redis broker is one ``LPUSH <queue>
<json>``: kombu's Redis transport envelope (``body``, ``content-type``, ``content-encoding``,
``headers``, ``properties``) around Celery's task message, protocol 2 (the headers name the
task and its id; the body is ``[args, kwargs, embed]`` as JSON, base64-encoded). ``send_task``
sets up a producer, a channel and a Redis client for each message, which costs more than the
LPUSH itself; the web process builds the same envelope here instead and pushes it in the same
round trip as the events that announce the answer (:mod:`bestchat.dispatch.celery`).

The worker side is plain Celery: it cannot tell these messages from ``send_task``'s
(``tests/test_celery_message.py`` compares the two field by field, and every integration
test's generation runs from one). Only what BestChat uses is supported: positional
arguments, the default exchange, priority 0, no ETA, no expiry, results ignored.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


def task_message(name: str, args: tuple[Any, ...], *, queue: str,
                 origin: str | None = None) -> str:
    """The broker's JSON for running task ``name`` with positional ``args`` (JSON values) from
    ``queue``: what ``celery.send_task(name, args=args)`` would push onto that list."""
    task_id = str(uuid.uuid4())
    body = json.dumps([list(args), {}, EMBED]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
            "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(tuple(args)), "kwargsrepr": "{}", "origin": origin or ORIGIN,
            "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": str(uuid.uuid4()), "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    })
