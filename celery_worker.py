"""Celery entry: ``celery -A celery_worker worker -P gevent`` (gevent patches before this import).

A worker, once ready, opens its database pool ahead (``bestchat.database.warm_pool``) and
exempts its startup objects from the garbage collector's full passes (``bestchat.heap``).
"""
from celery.signals import worker_ready

from bestchat import create_app
from bestchat.database import warm_pool
from bestchat.heap import freeze_startup_objects

flask_app = create_app()
celery_app = flask_app.extensions["celery"]


@worker_ready.connect
def _ready(**_kwargs) -> None:
    warm_pool(flask_app)
    freeze_startup_objects()
