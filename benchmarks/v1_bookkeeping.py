"""What a ``/v1`` chat completion costs the web process before its job is dispatched, next
to a WebSocket ``send``: CPU time, wall time, PostgreSQL and Redis round trips per request,
in one process, back to back.

    .venv/bin/python benchmarks/v1_bookkeeping.py --database postgresql://postgres@127.0.0.1:5432/bench \\
        --redis redis://127.0.0.1:6379/9 [--requests 300] [--profile v1]

The database's ``public`` schema is dropped and created again and the Redis database is
flushed: give it ones of its own. The app runs as in production (gevent-patched, Celery
dispatcher, Redis admission and bus); no worker runs, so no answer is generated: each is
cancelled after it is measured (outside the counts). The user has one native ``openai``
provider config with a key (as an integrator's ``/v1`` setup has), pointing nowhere.

- ``v1``: ``POST /v1/chat/completions`` (``stream: true``, one user message) through the
  Flask test client, until the view has returned its streaming response: the token check,
  the parsing, the model's resolution, the conversation and its messages stored, the
  dispatch and the follow of the answer.
- ``ws``: what a WebSocket ``send`` frame runs once parsed (``bestchat.ws``: the account
  read, then :meth:`ConversationManager.send` into an existing conversation the socket
  already follows), in an app context as the socket's loop runs it.

PostgreSQL round trips are counted at the driver (each of psycopg's ``Connection.wait``
that waits for the server: every ``BEGIN``, statement, ``COMMIT`` and ``ROLLBACK``, the ORM's
and :func:`bestchat.database.run_prepared`'s alike), Redis round trips at
``Connection.send_packed_command``. ``--profile v1|ws`` prints a cProfile (CPU time) of that
scenario's BestChat, Flask and session functions, by cumulative time; under gevent a function
that waits is also charged what other greenlets ran meanwhile, so read it for the shape only.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402

import psycopg  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bestchat import create_app  # noqa: E402
from bestchat.extensions import db  # noqa: E402
from bestchat.models import Base, User  # noqa: E402
from bestchat.redis_client import get_redis  # noqa: E402
from bestchat.services import accounts  # noqa: E402
from bestchat.services.conversations import ConversationManager  # noqa: E402

COUNTS: Counter[str] = Counter()


def _counting(name: str, original):
    def wrapper(*args, **kwargs):
        COUNTS[name] += 1
        return original(*args, **kwargs)

    return wrapper


def _round_trip(gen):
    """psycopg's generator ``gen``, counted once if it waits for the server at all (setting
    ``autocommit`` or rolling back an idle connection sends nothing)."""
    try:
        ready = gen.send(None)
    except StopIteration as stop:
        return stop.value
    COUNTS["sql"] += 1
    while True:
        sent = yield ready
        try:
            ready = gen.send(sent)
        except StopIteration as stop:
            return stop.value


def install_counters() -> None:
    wait = psycopg.Connection.wait
    psycopg.Connection.wait = lambda connection, gen, *args, **kwargs: wait(connection, _round_trip(gen),
                                                                             *args, **kwargs)
    redis.connection.AbstractConnection.send_packed_command = _counting(
        "redis", redis.connection.AbstractConnection.send_packed_command)


def make_app(database: str, redis_url: str):
    engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    Base.metadata.create_all(engine)
    engine.dispose()
    app = create_app({"DATABASE_URL": database, "REDIS_URL": redis_url, "JOBS_IN_PROCESS": False,
                      "INSTANCE_PATH": tempfile.mkdtemp(), "ENV_NAME": "testing", "TESTING": True,
                      "RATELIMIT_SEND_PER_USER": "1000000/60", "USER_MAX_ACTIVE_GENERATIONS": 1000000,
                      "OUTBOUND_ALLOW": ["127.0.0.0/8"]})
    get_redis(app).flushdb()
    return app


def setup_user(app) -> tuple[uuid.UUID, str]:
    from bestchat.testing.client import Client

    client = Client(app)
    client.post("/api/v1/auth/register", {"email": "bench@example.com", "password": "bench-password-1"})
    with app.app_context():
        user = accounts.find_by_email("bench@example.com")
        _token, plaintext = accounts.create_token(user, "bench")
        user_id = user.id
    bearer = client.new()
    bearer.bearer = plaintext
    response = bearer.post("/api/v1/providers", {"provider": "openai", "api_key": "sk-bench",
                                                 "base_url": "http://127.0.0.1:9/v1",
                                                 "enabled_models": ["gpt-bench"]})
    assert response.status_code == 201, response.get_data(as_text=True)
    return user_id, plaintext


def cancel(app, user_id: uuid.UUID, message_id: uuid.UUID) -> None:
    with app.app_context():
        ConversationManager(db.session.get(User, user_id)).cancel(message_id)


def run_v1(app, user_id, token, n: int, profile: cProfile.Profile | None) -> list[dict]:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    body = {"model": "openai/gpt-bench", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}
    results = []
    for _ in range(n):
        COUNTS.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        if profile:
            profile.disable()
        results.append({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, **COUNTS})
        assert response.status_code == 200, response.get_data(as_text=True)
        conversation_id = response.headers["X-BestChat-Conversation-Id"]
        response.close()
        with app.app_context():
            from bestchat.models import Message

            answer = db.session.scalar(db.select(Message.id).where(
                Message.conversation_id == uuid.UUID(conversation_id), Message.role == "assistant"))
        cancel(app, user_id, answer)
    return results


def run_ws(app, user_id, n: int, profile: cProfile.Profile | None) -> list[dict]:
    with app.app_context():
        manager = ConversationManager(db.session.get(User, user_id))
        conversation_ids = [manager.create(model="openai/gpt-bench").id for _ in range(n)]
    results = []
    for conversation_id in conversation_ids:
        COUNTS.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        with app.app_context():  # as bestchat.ws runs a command
            user = db.session.get(User, user_id)
            _question, answer = ConversationManager(user).send(conversation_id, "hello there",
                                                               before_announce=lambda: None)
        if profile:
            profile.disable()
        results.append({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, **COUNTS})
        cancel(app, user_id, answer.id)
    return results


def summary(name: str, results: list[dict]) -> str:
    results = results[len(results) // 5:]  # the first fifth warms up
    cpu = statistics.median(r["cpu"] for r in results) * 1e3
    low_cpu = statistics.quantiles([r["cpu"] for r in results], n=10)[0] * 1e3  # the least disturbed
    wall = statistics.median(r["wall"] for r in results) * 1e3
    sql = statistics.median(r.get("sql", 0) for r in results)
    rt = statistics.median(r.get("redis", 0) for r in results)
    return (f"{name:3} ({len(results)} measured): CPU p50 {cpu:.2f} ms (p10 {low_cpu:.2f}), wall p50 {wall:.2f} ms, "
            f"PostgreSQL round trips {sql:g}, Redis round trips {rt:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", choices=("v1", "ws"))
    args = parser.parse_args()
    app = make_app(args.database, args.redis)
    user_id, token = setup_user(app)
    install_counters()
    profile = cProfile.Profile(time.process_time) if args.profile else None  # CPU time
    v1 = run_v1(app, user_id, token, args.requests, profile if args.profile == "v1" else None)
    ws = run_ws(app, user_id, args.requests, profile if args.profile == "ws" else None)
    print(summary("v1", v1))
    print(summary("ws", ws))
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(r"bestchat|flask|werkzeug|sqlalchemy/orm/session", 60)


if __name__ == "__main__":
    main()
