"""The dispatcher of embedded mode and ``JOBS_IN_PROCESS``: jobs run in this process.

The Celery task object itself (:data:`~bestchat.dispatch.GENERATE_TASK`) runs on a gevent pool
of ``size`` greenlets, inside an app context (Celery's ``FlaskTask`` provides it). Jobs beyond
the pool's size wait in a queue in front of it, in order, so starting one never blocks the
request. The events go through the app's stream bus, whichever it is.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import deque
from typing import Any

import gevent
from celery import Celery
from gevent.pool import Pool

from bestchat.dispatch import GENERATE_TASK, Answer, Dispatcher
from bestchat.streaming import get_bus
from bestchat.tasks import TASK_MODULES

log = logging.getLogger(__name__)


class InProcessDispatcher(Dispatcher):
    """Runs jobs on a pool of ``size`` greenlets; more wait, in order, in ``waiting``."""

    in_process = True

    def __init__(self, celery: Celery, size: int):
        for module in TASK_MODULES:
            importlib.import_module(module)
        self.celery = celery
        self.pool = Pool(size)
        self.waiting: deque[tuple[Any, tuple[Any, ...]]] = deque()

    def announce_and_start(self, answer: Answer, events: list[dict[str, Any]]) -> None:
        get_bus().broadcast_many(str(answer.conversation_id), events)
        self.waiting.append((self.celery.tasks[GENERATE_TASK], (str(answer.id),)))
        self._start_waiting()

    def _start_waiting(self, _finished: Any = None) -> None:
        """Start waiting jobs while the pool has room (also called as each job ends)."""
        while self.waiting and self.pool.free_count() > 0:
            task, args = self.waiting.popleft()
            self.pool.spawn(self._run, task, args).link(self._start_waiting)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every running and waiting job (tests); True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.pool.join(timeout=remaining):
                return False
            if not self.waiting and not len(self.pool):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            gevent.sleep(0.01)  # an ending job's link starts the next waiting one

    def kill(self, timeout: float | None = None) -> None:
        """Drop the waiting jobs and kill the running ones (tests: a worker that dies)."""
        self.waiting.clear()
        self.pool.kill(timeout=timeout)

    @staticmethod
    def _run(task: Any, args: tuple[Any, ...]) -> None:
        try:
            task(*args)
        except Exception:  # noqa: BLE001 - a job's failure is logged, never takes the process down
            log.exception("job %s%r failed", task.name, args)
