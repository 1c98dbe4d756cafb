"""Where jobs run: ``enqueue(name, *args)`` sends a task by NAME.

In production it is a Celery task message pushed onto the Redis broker's queue, built in
:mod:`bestchat.tasks.celery_message` (what ``send_task`` would push, for a fraction of its
cost); the web process never imports the task modules, and so never the provider libraries
behind them. :func:`enqueue_after` broadcasts events and then enqueues, in one Redis round
trip when the bus is Redis too. In embedded mode, or with
``JOBS_IN_PROCESS``, the same task object runs on a gevent pool of ``JOBS_CONCURRENCY``
greenlets in this process, inside an app context (Celery's ``FlaskTask`` provides it); jobs
beyond that wait in a queue in front of the pool, in order, so submitting never blocks the
request. :func:`init_jobs` also sets up the admission that matches where jobs run
(:mod:`bestchat.services.admission`).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import deque
from typing import Any

import gevent
import redis
from celery import Celery
from flask import Flask, current_app
from gevent.pool import Pool

from bestchat.redis_client import get_redis
from bestchat.services.admission import init_admission
from bestchat.settings import ConfigurationError
from bestchat.streaming import StreamBus, get_bus
from bestchat.streaming.redis_bus import RedisBus
from bestchat.tasks.celery_message import task_message

log = logging.getLogger(__name__)

# Imported by every worker (Celery ``include``) and by the in-process runner: the tasks, and
# the worker's registration of its generation slots.
TASK_MODULES = ("bestchat.tasks.generation", "bestchat.tasks.worker_slots")


class Jobs:
    """Where jobs go: :meth:`submit` one; :meth:`submit_after` broadcasts events first."""

    def submit(self, name: str, *args: Any) -> None:
        raise NotImplementedError

    def submit_after(self, bus: StreamBus, conversation_id: str, events_: list[dict[str, Any]],
                     name: str, *args: Any) -> None:
        bus.broadcast_many(conversation_id, events_)
        self.submit(name, *args)


class CeleryJobs(Jobs):
    """Jobs for Celery workers, on the Redis broker's default queue (``task_default_queue``)."""

    def __init__(self, celery: Celery, client: redis.Redis):
        self.celery = celery
        self.redis = client  # the app's: the broker is the same REDIS_URL
        self.queue = celery.conf.task_default_queue

    def push_command(self, name: str, *args: Any) -> tuple[str, str, str]:
        return ("LPUSH", self.queue, task_message(name, args, queue=self.queue))

    def submit(self, name: str, *args: Any) -> None:
        self.redis.execute_command(*self.push_command(name, *args))

    def submit_after(self, bus: StreamBus, conversation_id: str, events_: list[dict[str, Any]],
                     name: str, *args: Any) -> None:
        if isinstance(bus, RedisBus):  # (always, in practice: both are on REDIS_URL)
            bus.broadcast_many(conversation_id, events_, then=[self.push_command(name, *args)])
        else:
            super().submit_after(bus, conversation_id, events_, name, *args)


class InProcessJobs(Jobs):
    """Runs jobs on a pool of ``size`` greenlets; more wait, in order, in ``waiting``."""

    def __init__(self, celery: Celery, size: int):
        for module in TASK_MODULES:
            importlib.import_module(module)
        self.celery = celery
        self.pool = Pool(size)
        self.waiting: deque[tuple[Any, tuple[Any, ...]]] = deque()

    def submit(self, name: str, *args: Any) -> None:
        self.waiting.append((self.celery.tasks[name], args))
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
    def _run(task, args: tuple[Any, ...]) -> None:
        try:
            task(*args)
        except Exception:  # noqa: BLE001 - a job's failure is logged, never takes the process down
            log.exception("job %s%r failed", task.name, args)


def init_jobs(app: Flask) -> None:
    in_process = app.config["JOBS_IN_PROCESS"]
    if in_process is None:
        in_process = app.config["EMBEDDED"]
    celery = app.extensions["celery"]
    if not in_process and get_redis(app) is None:
        raise ConfigurationError("JOBS_IN_PROCESS=0 needs REDIS_URL: Celery workers take their jobs from Redis")
    app.extensions["bestchat_jobs"] = (
        InProcessJobs(celery, app.config["JOBS_CONCURRENCY"]) if in_process
        else CeleryJobs(celery, get_redis(app))
    )
    init_admission(app, in_process=bool(in_process))


def enqueue(name: str, *args: Any) -> None:
    current_app.extensions["bestchat_jobs"].submit(name, *args)


def enqueue_after(conversation_id: str, events_: list[dict[str, Any]], name: str, *args: Any) -> None:
    """Broadcast ``events_`` to ``conversation_id``'s clients, then enqueue job ``name``: in
    that order (what the job publishes comes after them), and in one Redis round trip with
    Celery on Redis. On an error it is unknown how much of it happened."""
    current_app.extensions["bestchat_jobs"].submit_after(get_bus(), conversation_id, events_, name, *args)
