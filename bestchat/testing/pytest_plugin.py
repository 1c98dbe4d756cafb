"""Pytest fixtures for BestChat and its plugins (entry point ``pytest11: bestchat``).

With BestChat installed (its ``test`` extra adds pytest), every test gets these fixtures, with
no conftest:

- ``app``: a BestChat app per test, plugins loaded, on a clean database, set up as a server of
  its backend is: on the embedded backend generation jobs run in the test process (greenlets
  that run while the test yields to gevent); on the production backend they are handed to
  Celery, and no worker runs. :func:`bestchat.testing.send_and_wait` gets an answer generated
  on both. Jobs still running in the test process when the test ends are stopped.
- ``app_config``: extra settings for ``app`` (``{}``); override it in a test module to change
  any setting, e.g. ``{"JOBS_IN_PROCESS": True}`` to run jobs in the test process on both
  backends.
- ``client``: a :class:`~bestchat.testing.client.Client` on ``app`` (JSON in and out, the
  CSRF token attached); ``user``: registers and signs in ``alice@example.com`` on ``client``.
- ``runner``: Flask's CLI runner on ``app`` (``runner.invoke(args=["plugins", "list"])``).
- ``backend``: ``"embedded"`` (a fresh SQLite file, the in-memory stream bus), then
  ``"production"`` (PostgreSQL and Redis) when ``BESTCHAT_TEST_DATABASE_URL`` and
  ``BESTCHAT_TEST_REDIS_URL`` are set: ``app`` and everything using it run once per backend.
  PostgreSQL tables are created once per run and emptied before each test; the Redis database
  is flushed before each test, so give the tests databases of their own.
- ``fake_openai``: a :class:`~bestchat.testing.fake_openai.FakeOpenAI` server on a free
  loopback port for the test (the app's outbound policy lets providers reach loopback).

``docs/plugin-testing.md`` is the guide.
"""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import create_engine, text

from bestchat import create_app
from bestchat.dispatch import get_dispatcher
from bestchat.dispatch.in_process import InProcessDispatcher
from bestchat.extensions import db as _db
from bestchat.models import Base
from bestchat.testing.client import Client
from bestchat.testing.fake_openai import FakeOpenAI

TEST_PG_URL = os.environ.get("BESTCHAT_TEST_DATABASE_URL") or None
TEST_REDIS_URL = os.environ.get("BESTCHAT_TEST_REDIS_URL") or None

# "embedded": SQLite + in-memory bus; "production": PostgreSQL + Redis (when configured).
BACKENDS = ["embedded"] + (["production"] if TEST_PG_URL else [])


def _pg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url


@pytest.fixture(scope="session")
def pg_schema():
    """Create the PostgreSQL tables once per run (dropping leftovers from an earlier run)."""
    engine = create_engine(_pg_url(TEST_PG_URL))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    Base.metadata.create_all(engine)
    yield
    engine.dispose()


def offline_resolver(host: str, port: int) -> list[str]:
    """The outbound policy's resolver in tests: ``localhost`` only, so no test asks DNS
    (every other name is unresolvable: refused at connect time, accepted when saved)."""
    if host == "localhost":
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, f"{host}: not resolved in tests")


def make_config(backend: str, tmp_path, **extra) -> dict:
    config = {"INSTANCE_PATH": tmp_path / "instance", "ENV_NAME": "testing", "TESTING": True,
              "RATELIMIT_LOGIN_PER_IP": "1000/60", "RATELIMIT_LOGIN_PER_ACCOUNT": "1000/60",
              "RATELIMIT_LOGIN_PER_DEVICE": "1000/60",
              "RATELIMIT_REGISTER_PER_IP": "1000/60", "RATELIMIT_SEND_PER_USER": "1000/60",
              # The fake providers listen on loopback: every user's connections may reach them.
              "OUTBOUND_ALLOW": ["127.0.0.0/8", "::1"], "OUTBOUND_RESOLVER": offline_resolver}
    if backend == "production":
        config["DATABASE_URL"] = TEST_PG_URL
        config["REDIS_URL"] = TEST_REDIS_URL
    else:
        config["DATABASE_URL"] = f"sqlite:///{tmp_path / 'test.db'}"
        config["REDIS_URL"] = None
    config.update(extra)
    return config


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def app_config():
    """Extra settings for the ``app`` fixture; override this fixture in a test module."""
    return {}


@pytest.fixture
def app(backend, tmp_path, request, app_config):
    """The app of one test; see the module docstring."""
    if backend == "production":
        request.getfixturevalue("pg_schema")
    app = create_app(make_config(backend, tmp_path, **app_config))
    with app.app_context():
        if backend == "production":
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            _db.session.execute(text(f"TRUNCATE {tables} CASCADE"))
            _db.session.commit()
            from bestchat.redis_client import get_redis

            if get_redis(app) is not None:
                get_redis(app).flushdb()
        else:
            _db.create_all()
    yield app
    dispatcher = get_dispatcher(app)
    if isinstance(dispatcher, InProcessDispatcher):
        dispatcher.kill(timeout=5)  # no job of this test runs on in a later one
    with app.app_context():
        _db.session.remove()
        for engine in _db.engines.values():
            engine.dispose()


@pytest.fixture
def client(app) -> Client:
    """A JSON test client on ``app``, signed out (``user`` signs it in)."""
    return Client(app)


@pytest.fixture
def runner(app):
    """Flask's CLI runner on ``app``: ``runner.invoke(args=[...])`` runs a ``bestchat`` command."""
    return app.test_cli_runner()


@pytest.fixture
def user(client):
    """A registered, signed-in user (session cookie + CSRF token set on ``client``)."""
    return client.signup("alice@example.com", "correct horse battery")


@pytest.fixture
def fake_openai():
    """A :class:`FakeOpenAI` serving on a free localhost port for this test; give providers
    ``fake_openai.url`` as base URL, script it with ``.script`` / ``.enqueue()``, assert on
    ``.requests``."""
    with FakeOpenAI() as server:
        yield server
