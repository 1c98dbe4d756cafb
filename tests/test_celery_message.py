"""The web tier's own Celery task messages (:mod:`bestchat.dispatch.celery_message`): the same as
``send_task``'s on the Redis broker, pushed after the ``message.created`` events in one round
trip, and a push that fails ends the answer ``failed`` with a clear 503 (nothing left pending).
On PostgreSQL + Redis with Celery jobs (the integration tests run them on real workers)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from bestchat.extensions import db
from bestchat.models import Message
from bestchat.redis_client import get_redis
from bestchat.dispatch.celery_message import task_message
from bestchat.testing.client import assert_error

API = "/api/v1"
QUEUE = "bestchat"  # celery_app's task_default_queue


@pytest.fixture
def app_config(backend):
    if backend != "production":
        pytest.skip("Celery jobs need Redis")
    return {"JOBS_IN_PROCESS": False}


def decoded(raw: str) -> dict:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def without_ids(message: dict) -> dict:
    """The message with what differs between any two sends (ids, tags, sender) blanked."""
    headers, properties = dict(message["headers"]), dict(message["properties"])
    task_id = headers["id"]
    assert headers["root_id"] == properties["correlation_id"] == task_id
    for name in ("id", "root_id", "origin"):
        headers[name] = "*"
    for name in ("correlation_id", "reply_to", "delivery_tag"):
        properties[name] = "*"
    return {**message, "headers": headers, "properties": properties}


def test_the_message_is_what_send_task_pushes(app):
    redis = get_redis(app)
    app.extensions["celery"].send_task("bestchat.generate", args=("an-id",))
    theirs = decoded(redis.rpop(QUEUE))
    ours = decoded(task_message("bestchat.generate", ("an-id",), queue=QUEUE))
    assert redis.llen(QUEUE) == 0
    # send_task leaves ignore_result to the task's own setting (None); ours says True, as the
    # task declares: the worker uses the task's setting either way
    assert theirs["headers"].pop("ignore_result") in (None, True)
    assert ours["headers"].pop("ignore_result") is True
    assert without_ids(ours) == without_ids(theirs)
    assert ours["body"] == [["an-id"], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    assert ours["headers"]["id"] != json.loads(task_message("bestchat.generate", ("an-id",), queue=QUEUE))["headers"]["id"]


def test_a_send_pushes_one_generate_job_for_its_answer(app, client, user):
    conversation = client.post(f"{API}/conversations", {"model": "demo/demo"}).get_json()
    response = client.post(f"{API}/conversations/{conversation['id']}/messages", {"content": "hi"})
    assert response.status_code == 202, response.get_json()
    answer_id = response.get_json()["assistant_message"]["id"]
    jobs = [decoded(raw) for raw in get_redis(app).lrange(QUEUE, 0, -1)]
    assert [(job["headers"]["task"], job["body"][0]) for job in jobs] == [("bestchat.generate", [answer_id])]


def test_a_job_that_cannot_be_queued_fails_its_answer_with_503(app, client, user):
    redis = get_redis(app)
    redis.set(QUEUE, "not a list")  # the LPUSH fails (WRONGTYPE) after the events went out
    conversation = client.post(f"{API}/conversations", {"model": "demo/demo"}).get_json()
    response = client.post(f"{API}/conversations/{conversation['id']}/messages", {"content": "hi"})
    assert_error(response, 503, "unavailable")

    with app.app_context():
        answers = list(db.session.scalars(db.select(Message).where(
            Message.conversation_id == uuid.UUID(conversation["id"]), Message.role == "assistant")))
        assert [(m.status, m.error_code) for m in answers] == [("failed", "unavailable")]
    assert client.get("/readyz").get_json()["generation"]["in_flight"] == 0

    redis.delete(QUEUE)  # the broker is back: the conversation goes on
    again = client.post(f"{API}/conversations/{conversation['id']}/messages", {"content": "again"})
    assert again.status_code == 202, again.get_json()
    assert redis.llen(QUEUE) == 1
