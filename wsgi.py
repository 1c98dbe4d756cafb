"""WSGI entry: ``gunicorn -k gevent wsgi:app`` (gunicorn's gevent worker patches first)."""

from bestchat import create_app

app = create_app()
