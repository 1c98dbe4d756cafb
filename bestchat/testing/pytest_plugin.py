"""Pytest fixtures for BestChat and its plugins (entry point ``pytest11: bestchat``).

Any plugin's tests get ``app``, ``client``, ``runner``, ``user`` and ``fake_openai`` (a fake
OpenAI-compatible server, see :mod:`bestchat.testing.fake_openai`) with no conftest: an app per test on real SQLite, and on real PostgreSQL + Redis when
``BESTCHAT_TEST_DATABASE_URL`` / ``BESTCHAT_TEST_REDIS_URL`` are set (as CI sets them).

Each test gets a clean database: a fresh SQLite file, or PostgreSQL tables created once per
run and truncated before each test. The Redis database is flushed before each test.
"""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import create_engine, text

from bestchat import create_app
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
    with app.app_context():
        _db.session.remove()
        _db.engine.dispose()


@pytest.fixture
def client(app) -> Client:
    return Client(app)


@pytest.fixture
def runner(app):
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
