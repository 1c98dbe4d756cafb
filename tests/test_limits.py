"""Usage limits: which value applies to a user (their override, the most generous of their
groups, their plan), and each limit enforced before anything is stored, with the refusal
telling which limit, what is used and when it resets; over REST, the WebSocket and ``/v1``.

Each enforcement test runs with the in-process admission (both backends) and, on PostgreSQL +
Redis, with the Redis admission that Celery workers feed (no worker runs: admitted answers
stay in flight until the test finishes them). The clock of the limits is frozen, so windows
do not roll over under a test.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import Group, GroupMember, Message, Plan, UsageLog
from bestchat.models.limits import UserLimits
from bestchat.services import limit_counters, limits, usage_events
from bestchat.services.admission import InProcessAdmission, RedisAdmission, get_admission
from bestchat.testing.client import assert_error
from bestchat import plugins
from bestchat.dispatch import get_dispatcher
from tests.chat_fakes import GatedPlugin, GatedProvider, reset_gate
from tests.socket_client import SocketClient, memory_bus

API = "/api/v1"
# 10:20:30 UTC on a day in mid-month: the minute resets at 10:21, the day at midnight, the
# month on the 1st.
NOW = datetime(2026, 12, 7, 10, 20, 30, tzinfo=timezone.utc)


@pytest.fixture(params=["in_process", "redis"])
def mode(request, backend):
    if request.param == "redis" and backend != "production":
        pytest.skip("the Redis admission needs Redis")
    return request.param


@pytest.fixture
def app_config(mode):
    """Room for every answer (only the limits refuse), no per-user share."""
    return {"JOBS_IN_PROCESS": mode == "in_process", "JOBS_CONCURRENCY": 50, "GENERATION_QUEUE_LIMIT": 50,
            "USER_MAX_ACTIVE_GENERATIONS": 0}


@pytest.fixture
def gated(app):
    """The gated provider (answers run until the test ends); in-process jobs stopped after."""
    reset_gate()
    plugins.register_plugin(GatedPlugin(), "test-gated")
    try:
        yield
    finally:
        GatedProvider.feed.put(None)
        dispatcher = get_dispatcher(app)
        if hasattr(dispatcher, "kill"):
            dispatcher.kill(timeout=5)
        plugins.unregister_plugin("test-gated")


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(limits, "utcnow", lambda: NOW)
    limits._cache.clear()


def set_limits(app, user_id, **values) -> None:
    """The user's overrides (``requests_per_minute=3``...), as the admin console sets them."""
    with app.app_context():
        key = uuid.UUID(str(user_id))
        row = db.session.scalar(select(UserLimits).where(UserLimits.user_id == key))
        if row is None:
            row = UserLimits(user_id=key)
            db.session.add(row)
        for kind, value in values.items():
            setattr(row, "limit_" + kind, value)
        db.session.commit()
        limits.invalidate(key)


def used(app, user_id, *, tokens=0, cost=None, at=NOW) -> None:
    """A usage row as a finished answer's job writes it, then the usage event it sends."""
    with app.app_context():
        db.session.add(UsageLog(user_id=uuid.UUID(str(user_id)), provider="gated", model="g",
                                prompt_tokens=tokens, completion_tokens=0,
                                cost=None if cost is None else Decimal(cost), created_at=at.replace(tzinfo=None)))
        db.session.commit()
        usage_events.usage_recorded(uuid.UUID(str(user_id)), tokens, Decimal(cost or 0))


def new_conversation(client) -> str:
    return client.post(f"{API}/conversations", {"model": "gated/g", "settings": {"tokens_per_second": 0}}).get_json()["id"]


def send(client, conversation_id=None, content="hi"):
    return client.post(f"{API}/conversations/{conversation_id or new_conversation(client)}/messages",
                       {"content": content})


def admitted(response) -> dict:
    assert response.status_code == 202, response.get_json()
    return response.get_json()["assistant_message"]


def finish(app, answer) -> None:
    """The answer's job ended (its place in flight given back)."""
    with app.app_context():
        get_admission(app).release(answer["id"])


def message_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Message))


def refused(response, status, code) -> dict:
    assert_error(response, status, code)
    return response.get_json()["error"]


# ---- resolution --------------------------------------------------------------------------------


def test_each_limit_comes_from_the_override_else_the_most_generous_group_else_the_plan(app, user, mode):
    with app.app_context():
        uid = uuid.UUID(user["id"])
        db.session.add(Plan(name="basic", is_default=True, active=True, limit_requests_per_minute=5,
                            limit_tokens_per_day=1000, limit_cost_per_month=Decimal("2.5")))
        small = Group(name="small", limit_tokens_per_day=2000, limit_concurrent_generations=1)
        large = Group(name="large", limit_tokens_per_day=50000)
        db.session.add_all([small, large])
        db.session.flush()
        db.session.add_all([GroupMember(group_id=small.id, user_id=uid), GroupMember(group_id=large.id, user_id=uid)])
        db.session.add(UserLimits(user_id=uid, limit_cost_per_month=Decimal("10")))
        db.session.commit()
        found = limits.effective(uid)
    assert found.requests_per_minute == limits.Limit(5, "plan")
    assert found.tokens_per_day == limits.Limit(50000, "group")
    assert found.cost_per_month == limits.Limit(Decimal("10"), "user")
    assert found.concurrent_generations == limits.Limit(1, "group")


def test_a_user_with_nothing_set_has_no_limit(app, user, mode):
    with app.app_context():
        assert limits.effective(user["id"]) == limits.NO_LIMITS


def test_changed_limits_apply_once_invalidated_in_this_process_or_another(app, user, mode):
    set_limits(app, user["id"], tokens_per_day=100)
    with app.app_context():
        assert limits.effective(user["id"]).tokens_per_day.value == 100
        row = db.session.scalar(select(UserLimits))
        row.limit_tokens_per_day = 200
        db.session.commit()
        assert limits.effective(user["id"]).tokens_per_day.value == 100  # cached
        limits.invalidate(user["id"])
        assert limits.effective(user["id"]).tokens_per_day.value == 200
        row.limit_tokens_per_day = 300
        db.session.commit()
        limits.invalidate()  # everyone
        assert limits.effective(user["id"]).tokens_per_day.value == 300

        if mode == "redis":  # another process invalidates: this one's cache entry is stale
            row.limit_tokens_per_day = 400
            db.session.commit()
            get_admission(app).redis.incr(limits.USER_VERSION + user["id"])
            assert limits.effective(user["id"]).tokens_per_day.value == 400


# ---- each limit --------------------------------------------------------------------------------


def test_concurrent_generations_admits_exactly_the_limit(app, client, user, gated):
    set_limits(app, user["id"], concurrent_generations=2)
    first, second = admitted(send(client)), admitted(send(client))
    stored = message_count(app)
    response = send(client)
    body = refused(response, 429, "limit_concurrent_generations")
    assert (body["limit"], body["used"], body["resets_at"], body["limit_source"]) == (2, 2, None, "user")
    assert "2 answers" in body["message"]
    assert message_count(app) == stored
    finish(app, first)
    admitted(send(client))
    assert second


def test_requests_per_minute_admits_exactly_the_limit_and_resets_on_the_minute(app, client, user, gated):
    set_limits(app, user["id"], requests_per_minute=3)
    for _ in range(3):
        finish(app, admitted(send(client)))
    response = send(client)
    body = refused(response, 429, "limit_requests_per_minute")
    assert (body["limit"], body["used"], body["resets_at"], body["limit_source"]) == (
        3, 3, "2026-12-07T10:21:00Z", "user")
    assert int(response.headers["Retry-After"]) == 30
    assert "3 requests" in body["message"] and "10:21 UTC" in body["message"]
    summary = client.get(f"{API}/usage").get_json()["limits"]["requests_per_minute"]
    assert summary == {"limit": 3, "used": 3, "remaining": 0, "resets_at": "2026-12-07T10:21:00Z",
                       "source": "user"}


def test_a_regenerate_is_one_request(app, client, user, gated):
    set_limits(app, user["id"], requests_per_minute=2)
    first = admitted(send(client))
    finish(app, first)
    regenerated = client.post(f"{API}/messages/{first['id']}/regenerate")
    if regenerated.status_code != 202:  # (an answer that never ran: mark it ended first)
        with app.app_context():
            db.session.get(Message, uuid.UUID(first["id"])).status = "complete"
            db.session.commit()
        regenerated = client.post(f"{API}/messages/{first['id']}/regenerate")
    assert regenerated.status_code == 202, regenerated.get_json()
    refused(send(client), 429, "limit_requests_per_minute")


def test_tokens_per_day_one_answer_at_a_time_then_refused_until_midnight(app, client, user, gated):
    set_limits(app, user["id"], tokens_per_day=100)
    used(app, user["id"], tokens=60)
    first = admitted(send(client))
    # A second answer while the first runs would let both cross the limit: one at a time.
    body = refused(send(client), 429, "limit_tokens_per_day")
    assert (body["limit"], body["used"], body["limit_source"]) == (100, 60, "user")
    finish(app, first)
    used(app, user["id"], tokens=50)  # the answer crossed the limit on its way: it finished
    response = send(client)
    body = refused(response, 429, "limit_tokens_per_day")
    assert (body["limit"], body["used"], body["resets_at"]) == (100, 110, "2026-12-08T00:00:00Z")
    assert int(response.headers["Retry-After"]) == 13 * 3600 + 39 * 60 + 30
    assert body["message"] == ("you have used your 100 tokens for today; the limit resets at 00:00 UTC "
                               "(in 13 h 39 min)")
    summary = client.get(f"{API}/usage").get_json()["limits"]["tokens_per_day"]
    assert summary == {"limit": 100, "used": 110, "remaining": 0, "resets_at": "2026-12-08T00:00:00Z",
                       "source": "user"}


def test_cost_per_month_is_payment_required_on_rest_websocket_and_v1(app, client, user, gated):
    set_limits(app, user["id"], cost_per_month=Decimal("1.00"))
    used(app, user["id"], tokens=10, cost="1.25")
    used(app, user["id"], tokens=10)  # an unknown price counts nothing, shown apart
    stored = message_count(app)

    response = send(client)
    body = refused(response, 402, "limit_cost_per_month")
    assert (body["limit"], body["used"], body["resets_at"], body["limit_source"]) == (
        1.0, 1.25, "2027-01-01T00:00:00Z", "user")
    assert int(response.headers["Retry-After"]) == 24 * 86400 + 13 * 3600 + 39 * 60 + 30
    assert "$1.00" in body["message"] and "2027-01-01" in body["message"]

    memory_bus(app)
    with SocketClient(app, user["id"]) as socket:
        error = socket.ask({"type": "send", "conversation_id": new_conversation(client), "content": "hi",
                            "client_id": "c"})
        assert (error["type"], error["code"], error["limit"], error["limit_source"]) == (
            "error", "limit_cost_per_month", 1.0, "user")
        assert error["retry_after"] > 0

    token = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    sdk = client.new()
    sdk.bearer = token
    for stream in (False, True):
        response = sdk.post("/v1/chat/completions", {"model": "gated/g", "stream": stream,
                                                     "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 402 and response.mimetype == "application/json"
        assert response.get_json()["error"]["type"] == "insufficient_quota"
        assert response.get_json()["error"]["code"] == "limit_cost_per_month"
    assert message_count(app) == stored

    summary = client.get(f"{API}/usage").get_json()["limits"]["cost_per_month"]
    assert summary == {"limit": 1.0, "used": 1.25, "remaining": 0, "resets_at": "2027-01-01T00:00:00Z",
                       "source": "user", "unknown_cost_requests": 1}


def test_a_limit_from_a_group_or_plan_says_so(app, client, user, gated):
    with app.app_context():
        db.session.add(Plan(name="free", is_default=True, active=True, limit_concurrent_generations=1))
        db.session.commit()
        limits.invalidate()
    admitted(send(client))
    body = refused(send(client), 429, "limit_concurrent_generations")
    assert body["limit_source"] == "plan"
    usage = client.get(f"{API}/usage").get_json()
    assert usage["plan"]["name"] == "free" and usage["plan"]["source"] == "default"
    assert usage["limits"]["concurrent_generations"]["used"] == 1


def test_usage_shows_no_limits_and_no_plan_for_a_user_without_any(app, client, user, gated):
    usage = client.get(f"{API}/usage").get_json()
    assert usage["plan"] is None
    assert usage["limits"]["tokens_per_day"] == {"limit": None, "used": 0, "remaining": None,
                                                 "resets_at": "2026-12-08T00:00:00Z", "source": None}
    assert usage["limits"]["concurrent_generations"]["resets_at"] is None


# ---- counters (Redis) --------------------------------------------------------------------------


def test_counters_follow_usage_and_are_seeded_from_the_database_after_a_redis_restart(app, client, user,
                                                                                     gated, mode):
    if mode != "redis":
        pytest.skip("the counters live in Redis")
    assert isinstance(get_admission(app), RedisAdmission)
    set_limits(app, user["id"], tokens_per_day=100, cost_per_month=Decimal("5"))
    used(app, user["id"], tokens=40, cost="0.5")
    finish(app, admitted(send(client)))  # the first decision seeds the counters
    client_redis = get_admission(app).redis
    assert int(client_redis.get(limit_counters.tokens_key(user["id"], NOW))) == 40
    used(app, user["id"], tokens=70, cost="1.25")
    assert int(client_redis.get(limit_counters.tokens_key(user["id"], NOW))) == 110
    assert int(client_redis.get(limit_counters.cost_key(user["id"], NOW))) == 1_750_000

    refused(send(client), 429, "limit_tokens_per_day")
    for key in client_redis.keys("bc:lim:*"):  # Redis lost its data
        client_redis.delete(key)
    body = refused(send(client), 429, "limit_tokens_per_day")
    assert body["used"] == 110


def test_the_in_process_admission_reads_the_database_sums(app, client, user, gated, mode):
    if mode != "in_process":
        pytest.skip("in-process only")
    assert isinstance(get_admission(app), InProcessAdmission)
    set_limits(app, user["id"], tokens_per_day=100)
    used(app, user["id"], tokens=100)
    assert refused(send(client), 429, "limit_tokens_per_day")["used"] == 100
