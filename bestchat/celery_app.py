"""The Celery app bound to a Flask app (Flask's documented ``celery_init_app`` pattern).

Every task runs inside the Flask app context (``FlaskTask``). The broker is ``REDIS_URL``
(``memory://`` in embedded mode, where jobs run in-process instead). Results are ignored;
tasks acknowledge late, so a worker's warm shutdown puts the jobs it took but had not started
back on the queue. kombu's ``ack_emulation`` (a record of every delivered job in Redis, to
redeliver it after ``visibility_timeout``) is off: it costs a Redis round trip before every
job can start, and it would bring back a dead worker's job only after an hour, long after the
reaper (:mod:`bestchat.reaper`) ended its answer. The worker imports the task modules
(``include``); the web tier sends task messages itself (:mod:`bestchat.dispatch.celery`).
"""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask

from bestchat.tasks import TASK_MODULES


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.conf.update(
        broker_url=app.config["REDIS_URL"] or "memory://",
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_default_queue="bestchat",
        worker_prefetch_multiplier=1,
        broker_transport_options={"ack_emulation": False},
        worker_hijack_root_logger=False,
        include=list(TASK_MODULES),
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
