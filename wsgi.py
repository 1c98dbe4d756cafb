"""WSGI entry: ``gunicorn -k gevent wsgi:app`` (gunicorn's gevent worker patches first).

Each web process also runs the reaper (see ``bestchat.reaper``) in a background greenlet,
opens its database pool ahead (``bestchat.database.warm_pool``), loads the token encoding and
litellm's model map (``bestchat.context.tokens.warm``, ``bestchat.providers.model_map.warm``:
no request pays for them) and exempts its startup objects
from the garbage collector's full passes (``bestchat.gc_freeze``). When it runs generations
itself (embedded mode, ``JOBS_IN_PROCESS``) it removes cloud credentials from its environment as
a worker does (``bestchat.security.cloud_env``).
"""

from bestchat import create_app
from bestchat.context.tokens import warm as warm_tokens
from bestchat.providers.model_map import warm as warm_model_map
from bestchat.database import warm_pool
from bestchat.dispatch import get_dispatcher
from bestchat.gc_freeze import freeze_startup_objects
from bestchat.reaper import start_reaper
from bestchat.security.cloud_env import protect_worker

app = create_app()
if get_dispatcher(app).in_process:
    protect_worker(app)
start_reaper(app)
warm_pool(app)
with app.app_context():
    warm_tokens()
warm_model_map()
freeze_startup_objects()
