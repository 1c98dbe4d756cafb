"""Celery entry: ``celery -A celery_worker worker -P gevent`` (gevent patches before this import).

A worker, once ready, opens its database pool ahead (``bestchat.database.warm_pool``), loads
the token encoding and litellm's model map (``bestchat.context.tokens.warm``,
``bestchat.providers.model_map.warm``), warms the providers in use up
(``bestchat.providers.warmup``: the litellm plugin imports litellm there when a litellm
connection exists) and exempts its startup objects from the garbage collector's full passes
(``bestchat.gc_freeze``).

Before any job runs, the worker removes cloud credentials (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_*``...) from its environment, so no provider library
signs a user's request with the server's own identity (``bestchat.security.cloud_env``;
``WORKER_KEEP_CLOUD_CREDENTIALS`` keeps them).
"""
from celery.signals import worker_ready

from bestchat import create_app
from bestchat.context.tokens import warm as warm_tokens
from bestchat.providers.model_map import warm as warm_model_map
from bestchat.providers.warmup import warm_providers
from bestchat.database import warm_pool
from bestchat.gc_freeze import freeze_startup_objects
from bestchat.security.cloud_env import protect_worker

flask_app = create_app()
protect_worker(flask_app)
celery_app = flask_app.extensions["celery"]


@worker_ready.connect
def _ready(**_kwargs) -> None:
    warm_pool(flask_app)
    with flask_app.app_context():
        warm_tokens()
    warm_model_map()
    with flask_app.app_context():
        warm_providers()
    freeze_startup_objects()
