"""Where a generation is dispatched: the one way the web side starts an answer's job.

Once an exchange is stored, its service calls :meth:`Dispatcher.announce_and_start` with the
answer and the events that announce it (``message.created``): the events go to the
conversation's followers first, then the answer's generation job starts, so every chunk a
follower receives comes after the answer it belongs to.

:func:`init_dispatcher` chooses the implementation once, at app start:

- :class:`~bestchat.dispatch.in_process.InProcessDispatcher` in embedded mode or with
  ``JOBS_IN_PROCESS``: the job runs on a gevent pool of ``JOBS_CONCURRENCY`` greenlets in
  this process; the events go through the app's stream bus.
- :class:`~bestchat.dispatch.celery.CeleryDispatcher` otherwise: Celery workers take the job
  from the Redis broker (``REDIS_URL``, required). ``REDIS_URL`` also makes the stream bus the
  Redis bus (:func:`bestchat.streaming.init_bus`), so the events' ``PUBLISH``es and the
  job's ``LPUSH`` go to Redis together, in one round trip.

The admission that matches where jobs run (:func:`bestchat.services.admission.init_admission`)
follows :attr:`Dispatcher.in_process`. The web side never imports a task module (nor the
provider libraries behind them): Celery's task is named by :data:`GENERATE_TASK` alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

from flask import Flask, current_app

from bestchat.redis_client import get_redis
from bestchat.settings import ConfigurationError

# The Celery task that generates an answer, by name (bestchat.tasks.generation declares it).
GENERATE_TASK = "bestchat.generate"


class Answer(Protocol):
    """What a dispatcher reads of an answer: its id and its conversation's (UUIDs)."""

    id: Any
    conversation_id: Any


class Dispatcher(ABC):
    """Starts generation jobs; see the module docstring."""

    # Whether the jobs run in this process (then the process generates, as a worker does).
    in_process: bool = False

    @abstractmethod
    def announce_and_start(self, answer: Answer, events: list[dict[str, Any]]) -> None:
        """Deliver ``events`` to the followers of ``answer.conversation_id``, then start the
        generation of ``answer.id``, in that order. On an error it is unknown how much of it
        happened (the caller ends the answer)."""


def jobs_in_process(app: Flask) -> bool:
    """``JOBS_IN_PROCESS``, which defaults to embedded mode (no ``REDIS_URL``)."""
    in_process = app.config["JOBS_IN_PROCESS"]
    return bool(app.config["EMBEDDED"] if in_process is None else in_process)


def init_dispatcher(app: Flask) -> None:
    """The in-process dispatcher when :func:`jobs_in_process`, else the Celery one (which
    needs ``REDIS_URL``). After :func:`bestchat.celery_app.celery_init_app`."""
    celery = app.extensions["celery"]
    dispatcher: Dispatcher
    if jobs_in_process(app):
        from bestchat.dispatch.in_process import InProcessDispatcher

        dispatcher = InProcessDispatcher(celery, app.config["JOBS_CONCURRENCY"])
    else:
        client = get_redis(app)
        if client is None:
            raise ConfigurationError("JOBS_IN_PROCESS=0 needs REDIS_URL: Celery workers take their jobs from Redis")
        from bestchat.dispatch.celery import CeleryDispatcher

        dispatcher = CeleryDispatcher(client, celery.conf.task_default_queue)
    app.extensions["bestchat_dispatcher"] = dispatcher


def get_dispatcher(app: Flask | None = None) -> Dispatcher:
    return (app or current_app).extensions["bestchat_dispatcher"]
