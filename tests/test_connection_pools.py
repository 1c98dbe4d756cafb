"""A request that holds a connection of the main pool never waits for a second one of it.

Each pool here holds ONE connection and waits two seconds at most for it: a send by a user
with usage limits, whose admission resolves the limits and seeds the counters beside the
request's session (and, on PostgreSQL, stores the exchange in one statement), is admitted.
With one pool for both, the request would wait on itself until the pool's timeout and answer
500. On both backends, with the in-process admission and with the Redis one.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text

from bestchat.database import read_beside, side_engine
from bestchat.extensions import db
from bestchat.models import User
from tests.test_limits import (  # noqa: F401 - frozen, gated and mode are fixtures
    admitted, frozen, gated, mode, new_conversation, send, set_limits, used,
)

ONE_CONNECTION = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 2}


@pytest.fixture
def app_config(mode):
    return {"JOBS_IN_PROCESS": mode == "in_process", "JOBS_CONCURRENCY": 50, "GENERATION_QUEUE_LIMIT": 50,
            "USER_MAX_ACTIVE_GENERATIONS": 0, "SQLALCHEMY_ENGINE_OPTIONS": dict(ONE_CONNECTION),
            "DATABASE_POOL_SIZE": 1, "DATABASE_MAX_OVERFLOW": 0,
            "DATABASE_SIDE_POOL_SIZE": 1, "DATABASE_SIDE_MAX_OVERFLOW": 0}


def test_a_limited_user_is_admitted_with_one_connection_in_each_pool(app, client, user, gated):
    set_limits(app, user["id"], tokens_per_day=1000, cost_per_month="5", requests_per_minute=10)
    used(app, user["id"], tokens=10, cost="0.01")
    conversation_id = new_conversation(client)
    answer = admitted(send(client, conversation_id))
    listing = client.get(f"/api/v1/conversations/{conversation_id}/messages").get_json()["messages"]
    assert [message["id"] for message in listing][-1] == answer["id"]


def test_the_side_engine_is_another_pool_on_the_same_database(app, user):
    with app.app_context():
        assert side_engine() is not db.engine
        assert side_engine().pool is not db.engine.pool
        db.session.execute(text("SELECT 1"))  # the session holds its one connection
        [(email,)] = read_beside(select(User.email).where(User.id == uuid.UUID(user["id"])))
        assert email == user["email"]
        db.session.rollback()
