"""A Celery worker announces its generation slots while it runs (see
:mod:`bestchat.services.admission`): the web processes add up the slots of the live workers to
know the capacity, and queue or refuse new answers beyond it.

Imported by every worker with the task modules (``TASK_MODULES``). On ``worker_init`` it adds
the :class:`GenerationSlots` bootstep to the worker; the step starts once the pool exists
(so the concurrency is final, ``-c``) and registers ``concurrency`` slots in the broker's
Redis under ``<nodename>:<pid>``, refreshed in the background and removed on shutdown. A
worker killed outright stops refreshing and its slots expire. A worker on a non-Redis broker
(``memory://``, embedded mode) registers nothing.
"""

from __future__ import annotations

import logging
import os

import redis
from celery import bootsteps
from celery.signals import worker_init

from bestchat.services.admission import WorkerSlots

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


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
