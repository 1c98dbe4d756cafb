"""The dispatcher of Celery workers: the job is a task message pushed onto the Redis broker.

The web process builds the task message itself (:mod:`bestchat.dispatch.celery_message`) and
sends the ``PUBLISH`` of each event (built by the Redis bus, which owns that wire format:
:func:`bestchat.streaming.redis_bus.publish_command`) and the task's ``LPUSH`` on one
connection in one round trip: followers are told of the answer before a worker can take its
job. Celery workers need ``REDIS_URL``, which also makes the stream bus the Redis bus, so the
events reach the same followers as every other event (:mod:`bestchat.dispatch`).
"""

from __future__ import annotations

from typing import Any

import redis

from bestchat.dispatch import GENERATE_TASK, Answer, Dispatcher
from bestchat.dispatch.celery_message import task_message
from bestchat.redis_client import run_commands
from bestchat.streaming.redis_bus import publish_command


class CeleryDispatcher(Dispatcher):
    """Jobs for Celery workers, on the broker's queue ``queue`` (``task_default_queue``);
    ``client`` is the app's Redis (the broker is the same ``REDIS_URL``)."""

    def __init__(self, client: redis.Redis, queue: str):
        self.redis = client
        self.queue = queue

    def announce_and_start(self, answer: Answer, events: list[dict[str, Any]]) -> None:
        conversation_id = str(answer.conversation_id)
        job = task_message(GENERATE_TASK, (str(answer.id),), queue=self.queue)
        run_commands(self.redis, [*(publish_command(conversation_id, event) for event in events),
                                  ("LPUSH", self.queue, job)])
