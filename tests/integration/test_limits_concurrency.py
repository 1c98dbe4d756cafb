"""Usage limits hold under concurrency across processes: 50 sends at once from one user, spread
over two gunicorn web processes, answered by two Celery workers through a fake OpenAI upstream
(PostgreSQL + Redis).

- requests per minute and answers at once: exactly the limit is admitted, every other send is
  refused with the limit's code;
- tokens per day and cost per month: round after round of 50 sends until none is admitted; at
  most one answer is ever admitted at a time, every refusal has the limit's code, and the user
  ends no more than one answer's worth over the limit.

"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import redis
from sqlalchemy import create_engine, text

from bestchat.testing.fake_openai import FakeOpenAI, Script
from bestchat.testing.pytest_plugin import TEST_PG_URL, TEST_REDIS_URL
from tests.integration.stack import Stack, wait_for

SENDS = 50
MODEL = "openai/fake-model"


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    if not (TEST_PG_URL and TEST_REDIS_URL):
        pytest.skip("needs PostgreSQL and Redis")
    request.getfixturevalue("pg_schema")
    stack = Stack(tmp_path_factory.mktemp("limits"), database_url=TEST_PG_URL, redis_url=TEST_REDIS_URL,
                  webs=2, workers=2)
    # Only the usage limits refuse: no per-user share, no send rate, room in the queue.
    stack.env.update({"BESTCHAT_USER_MAX_ACTIVE_GENERATIONS": "0", "BESTCHAT_RATELIMIT_SEND_PER_USER": "",
                      "BESTCHAT_GENERATION_QUEUE_LIMIT": "1000"})
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def engine(stack):
    engine = create_engine(stack.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


@pytest.fixture
def user(stack, upstream):
    """A new user with their own connection to the fake upstream."""
    user = stack.new_user(f"limits-{time.monotonic_ns()}@example.com")
    created = user.api("POST", "/providers", json={"provider": "openai", "api_key": "sk-fake-0123456789",
                                                  "base_url": upstream.url, "enabled_models": ["fake-model"]})
    assert created.status_code == 201, created.text
    user.id = user.api("GET", "/me").json()["user"]["id"]
    upstream.script = Script(tokens=8)
    return user


def set_limit(stack, engine, user, kind: str, value) -> None:
    """The user's override, as the console stores it, then the invalidation every process sees."""
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO user_limits (id, user_id, limit_{kind}, created_at, updated_at) "
                                "VALUES (:id, :user_id, :value, now(), now())"),
                           {"id": str(uuid.uuid4()), "user_id": user.id, "value": value})
    redis.Redis.from_url(stack.redis_url).incr(f"bc:limits:version:{user.id}")


def burst(user, count: int = SENDS) -> list:
    """``count`` sends at once, each in its own conversation, alternating the web processes."""
    with ThreadPoolExecutor(10) as pool:
        conversations = list(pool.map(lambda _: user.conversation(), range(count)))

    def send(index: int):
        return user.api("POST", f"/conversations/{conversations[index]}/messages", web=index % 2,
                        json={"content": "hello there", "model": MODEL})

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(send, range(count)))


def wait_ended(user, responses) -> None:
    for response in responses:
        if response.status_code != 202:
            continue
        conversation_id = response.json()["assistant_message"]["conversation_id"]
        answer_id = response.json()["assistant_message"]["id"]

        def ended():
            listing = user.api("GET", f"/conversations/{conversation_id}/messages").json()["messages"]
            return any(m["id"] == answer_id and m["status"] in ("complete", "failed", "cancelled") for m in listing)

        wait_for(ended, timeout=60, what="an admitted answer to end")


def codes(responses) -> dict:
    found: dict = {}
    for response in responses:
        key = (response.status_code, None if response.status_code == 202 else response.json()["error"]["code"])
        found[key] = found.get(key, 0) + 1
    return found


def test_requests_per_minute_admits_exactly_the_limit(stack, engine, user):
    set_limit(stack, engine, user, "requests_per_minute", 7)
    wait_for(lambda: time.gmtime().tm_sec < 40, timeout=30, what="room in this minute")  # one window
    responses = burst(user)
    assert codes(responses) == {(202, None): 7, (429, "limit_requests_per_minute"): SENDS - 7}
    wait_ended(user, responses)


def test_concurrent_generations_admits_exactly_the_limit(stack, engine, user, upstream):
    set_limit(stack, engine, user, "concurrent_generations", 3)
    upstream.script = Script(tokens=8, delay=1.5)  # answers stay in flight through the burst
    responses = burst(user)
    assert codes(responses) == {(202, None): 3, (429, "limit_concurrent_generations"): SENDS - 3}
    wait_ended(user, responses)


def rounds_until_refused(user, upstream, code: str, status: int) -> None:
    """Bursts until one admits nothing: at most one answer admitted per burst (each answer
    outlasts a burst), every refusal with ``code``."""
    upstream.script = Script(tokens=20, delay=0.2)
    for _ in range(30):
        responses = burst(user)
        found = codes(responses)
        admitted = found.pop((202, None), 0)
        assert admitted <= 1, found
        assert found == {(status, code): SENDS - admitted}
        wait_ended(user, responses)
        if not admitted:
            return
    raise AssertionError("the limit was never reached")


def per_answer(engine, user) -> list[tuple[int, Decimal]]:
    """Tokens and known cost of each of the user's answers."""
    with engine.connect() as connection:
        return [(int(tokens), Decimal(cost or 0)) for tokens, cost in connection.execute(text(
            "SELECT sum(prompt_tokens + completion_tokens), sum(cost) FROM usage_logs "
            "WHERE user_id = :user_id GROUP BY message_id"), {"user_id": user.id})]


def test_tokens_per_day_ends_at_most_one_answer_over(stack, engine, user, upstream):
    limit = 60
    set_limit(stack, engine, user, "tokens_per_day", limit)
    rounds_until_refused(user, upstream, "limit_tokens_per_day", 429)
    answers = per_answer(engine, user)
    used = sum(tokens for tokens, _ in answers)
    assert limit <= used <= limit + max(tokens for tokens, _ in answers)


def test_cost_per_month_ends_at_most_one_answer_over(stack, engine, user, upstream):
    with engine.begin() as connection:  # $0.10 a token, in and out
        connection.execute(text(
            "INSERT INTO model_prices (id, provider, model, input_per_million, output_per_million, "
            "created_at, updated_at) VALUES (:id, 'openai', 'fake-model', 100000, 100000, now(), now()) "
            "ON CONFLICT DO NOTHING"), {"id": str(uuid.uuid4())})
    redis.Redis.from_url(stack.redis_url).incr("bestchat:prices:version")  # as the console's change does
    limit = Decimal("5")
    set_limit(stack, engine, user, "cost_per_month", limit)
    rounds_until_refused(user, upstream, "limit_cost_per_month", 402)
    answers = per_answer(engine, user)
    spent = sum(cost for _, cost in answers)
    assert limit <= spent <= limit + max(cost for _, cost in answers)
