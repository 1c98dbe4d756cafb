"""WSGI entry: ``gunicorn -k gevent wsgi:app`` (gunicorn's gevent worker patches first).

Each web process also runs the reaper (see ``bestchat.reaper``) in a background greenlet, and
opens its database pool ahead (``bestchat.database.warm_pool``).
"""

from bestchat import create_app
from bestchat.database import warm_pool
from bestchat.reaper import start_reaper

app = create_app()
start_reaper(app)
warm_pool(app)
