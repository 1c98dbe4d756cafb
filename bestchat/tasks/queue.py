"""Where jobs run: ``enqueue(name, *args)`` sends a task by NAME.

In production it is Celery's ``send_task`` (the web process never imports the task modules,
and so never the provider libraries behind them). In embedded mode, or with
``JOBS_IN_PROCESS``, the same task object runs on a gevent pool in this process, inside an
app context (Celery's ``FlaskTask`` provides it).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from celery import Celery
from flask import Flask, current_app
from gevent.pool import Pool

log = logging.getLogger(__name__)

TASK_MODULES = ("bestchat.tasks.generation",)


class CeleryJobs:
    def __init__(self, celery: Celery):
        self.celery = celery

    def submit(self, name: str, *args: Any) -> None:
        self.celery.send_task(name, args=args)


class InProcessJobs:
    def __init__(self, celery: Celery, size: int):
        for module in TASK_MODULES:
            importlib.import_module(module)
        self.celery = celery
        self.pool = Pool(size)

    def submit(self, name: str, *args: Any) -> None:
        task = self.celery.tasks[name]
        self.pool.spawn(self._run, task, args)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every running job (tests); True when none is left."""
        return self.pool.join(timeout=timeout)

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
    app.extensions["bestchat_jobs"] = (
        InProcessJobs(celery, app.config["JOBS_CONCURRENCY"]) if in_process else CeleryJobs(celery)
    )


def enqueue(name: str, *args: Any) -> None:
    current_app.extensions["bestchat_jobs"].submit(name, *args)
