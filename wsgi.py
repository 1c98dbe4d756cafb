"""WSGI entry: ``gunicorn -k gevent wsgi:app`` (gunicorn's gevent worker patches first).

Each web process also runs the reaper (see ``bestchat.reaper``) in a background greenlet,
opens its database pool ahead (``bestchat.database.warm_pool``) and exempts its startup objects
from the garbage collector's full passes (``bestchat.heap``).
"""

from bestchat import create_app
from bestchat.database import warm_pool
from bestchat.heap import freeze_startup_objects
from bestchat.reaper import start_reaper

app = create_app()
start_reaper(app)
warm_pool(app)
freeze_startup_objects()
