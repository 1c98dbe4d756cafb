"""A Celery worker announces its generation slots while it runs: the web processes add up the
slots of the live workers to know the capacity, and queue or refuse new answers beyond it
(:mod:`bestchat.services.admission` reads what is registered here).

Imported by every worker with the task modules (``TASK_MODULES``). On ``worker_init`` it adds
the :class:`GenerationSlots` bootstep to the worker; the step starts once the pool exists
(so the concurrency is final, ``-c``) and registers ``concurrency`` slots in the broker's
Redis under ``<nodename>:<pid>`` (:class:`WorkerSlots`), refreshed in the background and
removed on shutdown. A worker killed outright stops refreshing and its slots expire. A worker
on a non-Redis broker (``memory://``, embedded mode) registers nothing.
"""

from __future__ import annotations

import logging
import os
import threading

import redis
from celery import bootsteps
from celery.signals import worker_init

from bestchat.services.admission import WORKER, WORKERS

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# A worker's registration lives this long unless refreshed every WORKER_REFRESH seconds.
WORKER_TTL = 30
WORKER_REFRESH = 10


class WorkerSlots:
    """One Celery worker's registered capacity: ``slots`` generations under ``worker_id``.

    :meth:`start` registers now and refreshes every ``refresh`` seconds in a background thread
    (a greenlet under gevent); :meth:`stop` unregisters. A worker that dies stops refreshing
    and its slots expire after ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, worker_id: str, slots: int, *,
                 ttl: int = WORKER_TTL, refresh: float = WORKER_REFRESH):
        self.redis = client
        self.worker_id = worker_id
        self.slots = slots
        self.ttl = ttl
        self.refresh = refresh
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(WORKER + self.worker_id, self.slots, ex=self.ttl)
        pipe.sadd(WORKERS, self.worker_id)
        pipe.execute()

    def unregister(self) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(WORKER + self.worker_id)
        pipe.srem(WORKERS, self.worker_id)
        pipe.execute()

    def start(self) -> None:
        self.register()
        self._thread = threading.Thread(target=self._keep, name="bestchat-worker-slots", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        try:
            self.unregister()
        except redis.RedisError:
            log.warning("could not unregister worker %s (its slots expire in %ss)", self.worker_id, self.ttl)

    def _keep(self) -> None:
        while not self._stopped.wait(self.refresh):
            try:
                self.register()
            except redis.RedisError as error:  # the next refresh tries again
                log.warning("could not refresh worker %s: %s", self.worker_id, error)


class GenerationSlots(bootsteps.StartStopStep):
    """Keeps this worker's slots registered from pool start to shutdown."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.slots: WorkerSlots | None = None

    def start(self, worker) -> None:
        url = str(worker.app.conf.broker_url or "")
        if not url.startswith(REDIS_SCHEMES):
            return
        worker_id = f"{worker.hostname}:{os.getpid()}"
        self.slots = WorkerSlots(redis.Redis.from_url(url), worker_id, int(worker.concurrency))
        self.slots.start()
        log.info("registered %s generation slots as %s", worker.concurrency, worker_id)

    def stop(self, worker) -> None:
        if self.slots is not None:
            self.slots.stop()
            self.slots = None

    terminate = stop


@worker_init.connect
def _add_step(sender, **_kwargs) -> None:
    """``worker_init`` comes before the worker builds its bootsteps from ``app.steps``."""
    sender.app.steps["worker"].add(GenerationSlots)
