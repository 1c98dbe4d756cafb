"""Celery entry: ``celery -A celery_worker worker -P gevent`` (gevent patches before this import).

A worker opens its database pool ahead once it is ready (``bestchat.database.warm_pool``).
"""
from celery.signals import worker_ready

from bestchat import create_app
from bestchat.database import warm_pool

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_ready.connect
def _warm_pool(**_kwargs) -> None:
    warm_pool(flask_app)
