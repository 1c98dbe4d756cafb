"""WSGI entry: ``gunicorn -k gevent wsgi:app`` (gunicorn's gevent worker patches first).

Each web process also runs the reaper (see ``bestchat.reaper``) in a background greenlet.
"""

from bestchat import create_app
from bestchat.reaper import start_reaper

app = create_app()
start_reaper(app)
