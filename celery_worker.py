"""Celery entry: ``celery -A celery_worker worker -P gevent`` (gevent patches before this import)."""
from bestchat import create_app

celery_app = create_app().extensions["celery"]
