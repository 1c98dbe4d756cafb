"""Fixtures of the integration tests: a real stack (gunicorn web processes, and in production
mode PostgreSQL, Redis and a Celery worker) started once per module and mode, and a user on it.

A module sets ``PRODUCTION_WEB_PROCESSES`` to run more than one web process in production mode.
"""

from __future__ import annotations

import time

import pytest

from bestchat.testing.pytest_plugin import TEST_PG_URL, TEST_REDIS_URL
from tests.integration.stack import Stack

MODES = ["embedded"] + (["production"] if TEST_PG_URL and TEST_REDIS_URL else [])


@pytest.fixture(scope="module", params=MODES)
def stack(request, tmp_path_factory):
    production = request.param == "production"
    if production:
        request.getfixturevalue("pg_schema")
    webs = getattr(request.module, "PRODUCTION_WEB_PROCESSES", 1) if production else 1
    stack = Stack(tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-{request.param}"),
                  database_url=TEST_PG_URL if production else None,
                  redis_url=TEST_REDIS_URL if production else None,
                  webs=webs, workers=1 if production else 0)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def alice(stack):
    return stack.new_user(f"alice-{time.monotonic_ns()}@example.com")
