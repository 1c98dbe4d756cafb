"""One user cannot take every generation slot: a per-user limit on answers in flight and on
sends (429, nothing stored, other users unaffected, the place given back however an answer
ends), a maximum generation duration (``failed`` with ``too_long``, partial content kept),
and conversation settings checked against the providers' options when they are set (400).

On both backends with the in-process job runner; on PostgreSQL + Redis also with the Redis
admission that Celery workers feed (one atomic script for every web process)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.dispatch import get_dispatcher
from bestchat.errors import RateLimited
from bestchat.models import Conversation
from bestchat.providers.base import ProviderUnavailable
from bestchat.reaper import reap
from bestchat.services.admission import RedisAdmission, TooManyGenerations, get_admission
from bestchat.streaming import events, get_bus
from bestchat.streaming.frame_writer import running
from bestchat.testing.client import assert_error
from tests.chat_fakes import GatedProvider, gated, wait_for  # noqa: F401 - gated is a fixture
from tests.socket_client import SocketClient
from tests.test_admission import (  # noqa: F401 - celery_jobs and one_worker are fixtures
    celery_jobs, died_while_streaming, memory_bus, message_count, one_worker, row, run_job,
)

API = "/api/v1"
LIMIT = 2


@pytest.fixture
def app_config(request, backend):
    """Jobs in this process, one at a time (so which answer runs is known), a roomy queue,
    and a per-user limit of ``LIMIT``; with ``celery_jobs`` jobs go to Celery instead."""
    celery = "celery_jobs" in request.fixturenames
    if celery and backend != "production":
        pytest.skip("the Redis admission needs Redis")
    return {"JOBS_IN_PROCESS": not celery, "JOBS_CONCURRENCY": 1, "GENERATION_QUEUE_LIMIT": 10,
            "USER_MAX_ACTIVE_GENERATIONS": LIMIT, "RATELIMIT_SEND_PER_USER": "1000/60"}


def new_conversation(client, model="gated/g", **settings) -> str:
    response = client.post(f"{API}/conversations", {"model": model, "settings": settings})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def send(client, conversation_id, content="hi"):
    return client.post(f"{API}/conversations/{conversation_id}/messages", {"content": content})


def answer_of(response) -> dict:
    assert response.status_code == 202, response.get_json()
    return response.get_json()["assistant_message"]


def assert_too_many(response) -> None:
    error = assert_error(response, 429, "too_many_generations")
    assert error["limit"] == LIMIT and str(LIMIT) in error["message"]
    assert int(response.headers["Retry-After"]) > 0


def updated_at(client, conversation_id) -> str:
    return client.get(f"{API}/conversations/{conversation_id}").get_json()["updated_at"]


def other_user(client):
    """Bob, signed in on his own client (his account as ``bob.user``)."""
    bob = client.new()
    bob.user = bob.signup("bob@example.com", "bob horse battery staple")
    return bob


def finish_next(app, answer) -> None:
    """End the answer the (one-slot) pool runs now."""
    wait_for(lambda: row(app, answer["id"]).status == "streaming")
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, answer["id"]).status == "complete")


# ---- answers in flight per user (in-process jobs, both backends) ------------------------------

def test_a_user_at_the_limit_is_refused_over_rest_while_another_user_is_accepted(app, client, user, gated):
    first = answer_of(send(client, new_conversation(client), "one"))
    second = answer_of(send(client, new_conversation(client), "two"))
    assert (first["status"], second["status"]) == ("pending", "queued")
    refused_in = new_conversation(client)
    before = updated_at(client, refused_in)

    assert_too_many(send(client, refused_in, "three"))
    assert message_count(app, refused_in) == 0 and updated_at(client, refused_in) == before

    bob = other_user(client)
    assert answer_of(send(bob, new_conversation(bob), "bob's"))["status"] == "queued"

    finish_next(app, first)  # the slot comes back when the answer ends
    third = answer_of(send(client, refused_in, "three"))
    assert third["status"] == "queued"
    assert message_count(app, refused_in) == 2


def test_regenerate_and_edit_count_against_the_limit(app, client, user, gated):
    conversation_id = new_conversation(client)
    done = answer_of(send(client, conversation_id, "question"))
    finish_next(app, done)
    answer_of(send(client, new_conversation(client), "one"))
    answer_of(send(client, new_conversation(client), "two"))

    assert_too_many(client.post(f"{API}/messages/{done['id']}/regenerate"))
    assert_too_many(client.patch(f"{API}/messages/{done['parent_id']}", {"content": "edited"}))
    assert message_count(app, conversation_id) == 2


def test_over_websocket_a_user_at_the_limit_gets_an_error_frame(app, client, user, gated):
    memory_bus(app)
    answer_of(send(client, new_conversation(client), "one"))
    answer_of(send(client, new_conversation(client), "two"))
    refused_in = new_conversation(client)
    before = updated_at(client, refused_in)
    with SocketClient(app, user["id"]) as socket:
        error = socket.ask({"type": "send", "conversation_id": refused_in, "content": "three"})
        assert error["type"] == "error" and error["code"] == "too_many_generations"
        assert error["limit"] == LIMIT and str(LIMIT) in error["message"]
        assert message_count(app, refused_in) == 0 and updated_at(client, refused_in) == before
        assert socket.ask({"type": "ping"}) == {"type": "pong"}

    bob = other_user(client)
    with SocketClient(app, bob.user["id"]) as bobs:
        conversation_id = new_conversation(bob)
        bobs.send({"type": "send", "conversation_id": conversation_id, "content": "hi"})
        frames = [bobs.receive() for _ in range(2)]
        assert [(f["type"], f["message"]["role"]) for f in frames] == [
            ("message.created", "user"), ("message.created", "assistant")]


def test_the_openai_endpoint_answers_429_in_openais_shape_and_stores_nothing(app, client, user, gated):
    answer_of(send(client, new_conversation(client), "one"))
    answer_of(send(client, new_conversation(client), "two"))
    sdk = client.new()
    sdk.bearer = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    with app.app_context():
        conversations_before = db.session.scalar(select(func.count()).select_from(Conversation))

    response = sdk.post("/v1/chat/completions", {"model": "gated/g", "stream": True,
                                                 "messages": [{"role": "user", "content": "c"}]})
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    error = response.get_json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "too_many_generations")
    assert error["limit"] == LIMIT
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == conversations_before


def test_the_place_comes_back_when_an_answer_fails_or_is_cancelled(app, client, user, gated):
    failing = answer_of(send(client, new_conversation(client), "one"))
    queued = answer_of(send(client, new_conversation(client), "two"))
    blocked_in = new_conversation(client)
    assert_too_many(send(client, blocked_in, "three"))

    cancelled = client.post(f"{API}/messages/{queued['id']}/cancel").get_json()["message"]
    assert cancelled["status"] == "cancelled"
    replacement = answer_of(send(client, blocked_in, "three"))
    assert_too_many(send(client, new_conversation(client), "four"))

    wait_for(lambda: row(app, failing["id"]).status == "streaming")
    GatedProvider.feed.put(ProviderUnavailable("upstream went away"))
    wait_for(lambda: row(app, failing["id"]).status == "failed")
    answer_of(send(client, new_conversation(client), "four"))
    finish_next(app, replacement)


# ---- sends per user ---------------------------------------------------------------------------

@pytest.fixture
def two_sends_a_minute(app):
    get_admission(app).send_rate = (2, 60)


def test_past_the_send_rate_a_user_gets_429_with_retry_after(app, client, user, two_sends_a_minute):
    get_admission(app).user_limit = 0  # (only the rate counts here)
    answer_of(send(client, new_conversation(client, "demo/demo", tokens_per_second=0), "one"))
    answer_of(send(client, new_conversation(client, "demo/demo", tokens_per_second=0), "two"))
    refused_in = new_conversation(client, "demo/demo", tokens_per_second=0)

    response = send(client, refused_in, "three")
    assert_error(response, 429, "rate_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert message_count(app, refused_in) == 0
    bob = other_user(client)
    answer_of(send(bob, new_conversation(bob, "demo/demo", tokens_per_second=0), "bob's"))
    get_dispatcher(app).join(15)


# ---- the longest generation -------------------------------------------------------------------

def test_an_answer_running_too_long_ends_failed_with_its_partial_content(app, client, user, gated):
    memory_bus(app)
    answer = answer_of(send(client, new_conversation(client), "go on forever"))
    GatedProvider.feed.put("so far")
    wait_for(lambda: [d for d in get_bus(app).replay(answer["id"]) if d.kind == events.CHUNK])

    running(app).max_seconds = 1e-6  # (the housekeeper checks it on its next pass)
    wait_for(lambda: row(app, answer["id"]).status == "failed")
    message = row(app, answer["id"])
    assert (message.error_code, message.content, message.last_seq) == ("too_long", "so far", 1)
    final = [d.event for d in get_bus(app).replay(answer["id"])][-1]
    assert final["type"] == events.FAILED and final["error"]["code"] == "too_long"
    wait_for(lambda: client.get("/readyz").get_json()["generation"]["in_flight"] == 0)


# ---- conversation settings --------------------------------------------------------------------

@pytest.mark.parametrize("settings, code, named", [
    ({"tokens_per_second": 0.01}, "invalid_setting", "tokens_per_second"),
    ({"tokens_per_second": 10_001}, "invalid_setting", "tokens_per_second"),
    ({"temperature": 5}, "invalid_setting", "temperature"),
    ({"timeout": "forever"}, "invalid_setting", "timeout"),
    ({"speed": 3}, "unknown_setting", "speed"),
    ({"created_via": {"nested": True}}, "invalid_setting", "created_via"),
])
def test_invalid_settings_are_refused_at_creation_and_update_and_change_nothing(app, client, user,
                                                                                  settings, code, named):
    response = client.post(f"{API}/conversations", {"title": "slow", "model": "demo/demo", "settings": settings})
    assert named in assert_error(response, 400, code)["message"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == 0

    good = client.post(f"{API}/conversations", {"title": "fine", "model": "demo/demo",
                                                "settings": {"tokens_per_second": 5, "temperature": 0.5}})
    assert good.status_code == 201, good.get_json()
    before = good.get_json()
    response = client.patch(f"{API}/conversations/{before['id']}", {"title": "renamed", "settings": settings})
    assert named in assert_error(response, 400, code)["message"]
    assert client.get(f"{API}/conversations/{before['id']}").get_json() == before


def test_valid_settings_of_any_installed_provider_are_kept(app, client, user):
    settings = {"tokens_per_second": 0, "temperature": 0.2, "max_tokens": 10, "created_via": "openai_api"}
    created = client.post(f"{API}/conversations", {"model": "demo/demo", "settings": settings})
    assert created.status_code == 201 and created.get_json()["settings"] == settings
    cleared = client.patch(f"{API}/conversations/{created.get_json()['id']}", {"settings": None})
    assert cleared.status_code == 200 and cleared.get_json()["settings"] == {}


# ---- the Redis admission (production backend) -------------------------------------------------

def test_redis_admission_holds_each_user_to_the_limit_and_gives_places_back(app, client, user, one_worker):
    assert isinstance(get_admission(app), RedisAdmission)
    first = answer_of(send(client, new_conversation(client, "demo/demo", tokens_per_second=0), "one"))
    answer_of(send(client, new_conversation(client, "demo/demo"), "two"))
    blocked_in = new_conversation(client, "demo/demo")
    assert_too_many(send(client, blocked_in, "three"))
    assert message_count(app, blocked_in) == 0
    bob = other_user(client)
    answer_of(send(bob, new_conversation(bob, "demo/demo"), "bob's"))
    assert client.get("/readyz").get_json()["generation"]["in_flight"] == 3

    run_job(app, first["id"])  # the job's end gives the place back
    assert row(app, first["id"]).status == "complete"
    answer_of(send(client, blocked_in, "three"))
    assert_too_many(send(client, new_conversation(client, "demo/demo"), "four"))


def test_redis_admission_gives_back_the_place_of_a_job_that_died(app, client, user, one_worker):
    app.config["REAPER_STALE_AFTER"] = 0
    get_admission(app).user_limit = 1
    lost = answer_of(send(client, new_conversation(client, "demo/demo")))
    died_while_streaming(app, lost["id"])
    blocked_in = new_conversation(client, "demo/demo")
    assert_error(send(client, blocked_in, "blocked"), 429, "too_many_generations")

    time.sleep(0.01)  # REAPER_STALE_AFTER=0: anything older than now is stale
    with app.app_context():
        assert reap(app) == 1
    assert row(app, lost["id"]).status == "interrupted"
    answer_of(send(client, blocked_in, "accepted"))


def test_redis_admission_counts_sends_per_user_in_the_same_script(app, celery_jobs):
    admission = get_admission(app)
    admission.user_limit, admission.send_rate = 1, (3, 60)
    admission.admit("m1", "alice")
    with pytest.raises(TooManyGenerations):
        admission.admit("m2", "alice")
    admission.admit("b1", "bob")
    admission.release("m1")
    admission.admit("m3", "alice")
    admission.release("m3")
    with pytest.raises(RateLimited) as refused:  # the fourth attempt within the minute
        admission.admit("m4", "alice")
    assert refused.value.code == "rate_limited" and 0 < refused.value.retry_after <= 60
    assert admission.status()["in_flight"] == 1  # bob's; nothing refused was counted
