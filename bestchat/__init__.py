"""BestChat: a self-hosted, plugin-based LLM chat server.

``create_app()`` builds the Flask application in a fixed order: settings, extensions, models,
the stream bus, the job dispatcher, the admission and the upload storage (each chosen once,
from the settings), the WSGI middleware (trusted proxies; on gevent, requests taking turns:
``bestchat.turns``), blueprints, error handlers, plugins (last, so plugins can override), the
admin console, the settings stored in the database (``bestchat.services.site_settings``),
command line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"


def create_app(test_config: dict | None = None) -> Flask:
    # Flask is imported here, not at the top: a sandboxed tool run imports this package (for
    # bestchat.tools.context) and starts faster without it.
    from flask import Flask

    from bestchat.settings import default_instance_path, load_settings

    overrides = dict(test_config or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or default_instance_path()
    app = Flask(__name__, instance_path=str(instance_path))
    load_settings(app, overrides)
    _configure_logging(app)

    from bestchat.extensions import db, login_manager, migrate, sock
    from bestchat.database import init_database
    from bestchat.redis_client import init_redis
    from bestchat.security.ratelimit import init_rate_limiter
    from bestchat.settings import REPO_ROOT

    init_database(app, db)
    migrate.init_app(app, db, directory=str(REPO_ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    from bestchat.request_facts import init_request_facts
    from bestchat.security.authn import init_auth

    init_request_facts(app)
    init_auth(app)
    sock.init_app(app)
    init_redis(app)
    init_rate_limiter(app)

    from bestchat.celery_app import celery_init_app
    from bestchat.dispatch import get_dispatcher, init_dispatcher
    from bestchat.services.admission import init_admission
    from bestchat.store import init_store
    from bestchat.streaming import init_bus

    init_store(app)
    # REDIS_URL set: the Redis bus, and Celery workers unless JOBS_IN_PROCESS (embedded mode:
    # the memory bus and jobs in this process); the admission follows where jobs run.
    init_bus(app)
    celery_init_app(app)
    init_dispatcher(app)
    init_admission(app, in_process=get_dispatcher(app).in_process)
    from bestchat.uploads.storage import init_storage

    init_storage(app)

    if app.config["TRUSTED_PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = app.config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    from bestchat.turns import TakeTurns, serving_under_gevent

    if serving_under_gevent():  # keep-alive connections take turns (bestchat.turns)
        app.wsgi_app = TakeTurns(app.wsgi_app)

    from bestchat import api, health, openai_compat, web
    from bestchat.error_responses import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(openai_compat.bp)
    app.register_blueprint(health.bp)
    from bestchat.ws import init_ws

    init_ws(app)
    app.register_blueprint(web.bp)
    register_error_handlers(app)
    from bestchat.web.headers import init_headers

    init_headers(app)

    from bestchat import plugins

    plugins.load_plugins(app)
    plugins.run_register_blueprints(app)

    from bestchat.admin import init_admin

    init_admin(app)

    from bestchat.services.site_settings import init_site_settings

    # Last: every plugin's blueprints and admin views exist, so one blocked in the console is
    # gated (404) rather than missing until a restart.
    plugins.init_blueprint_gate(app)
    init_site_settings(app)

    from bestchat.cli import register_commands

    register_commands(app)
    return app


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
