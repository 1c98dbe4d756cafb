"""Beyond capacity: new answers wait visibly as ``queued`` or are refused at once with 503
``overloaded`` (nothing stored), never left hanging; on both backends, with the in-process
job runner, and on PostgreSQL + Redis with the Redis admission that Celery workers feed."""

from __future__ import annotations

import time
import uuid

import gevent
import pytest
import redis
from sqlalchemy import func, select, update

from bestchat.extensions import db
from bestchat.models import Conversation, Message, User
from bestchat.models.base import utcnow
from bestchat.reaper import reap
from bestchat.services.admission import RedisAdmission, get_admission
from bestchat.tasks.worker_slots import WorkerSlots
from bestchat.streaming import events, get_bus
from bestchat.streaming.memory_bus import MemoryBus
from bestchat.testing.client import assert_error
from bestchat.testing.pytest_plugin import TEST_REDIS_URL
from tests.chat_fakes import GatedProvider, gated, wait_for  # noqa: F401 - gated is a fixture
from tests.socket_client import SocketClient

API = "/api/v1"


@pytest.fixture
def app_config(request, backend):
    """Jobs in this process, one at a time, and one answer may wait; with ``celery_jobs``,
    jobs go to Celery instead (nobody consumes them unless the test runs them)."""
    celery = "celery_jobs" in request.fixturenames
    if celery and backend != "production":
        pytest.skip("the Redis admission needs Redis")
    return {"JOBS_IN_PROCESS": not celery, "JOBS_CONCURRENCY": 1, "GENERATION_QUEUE_LIMIT": 1}


def new_conversation(client, model="gated/g") -> str:
    return client.post(f"{API}/conversations", {"model": model, "settings": {"tokens_per_second": 0}}).get_json()["id"]


def send(client, conversation_id, content="hi"):
    return client.post(f"{API}/conversations/{conversation_id}/messages", {"content": content})


def answer_of(response) -> dict:
    assert response.status_code == 202, response.get_json()
    return response.get_json()["assistant_message"]


def row(app, message_id) -> Message:
    with app.app_context():
        message = db.session.get(Message, uuid.UUID(str(message_id)))
        db.session.expunge(message)
        return message


def message_count(app, conversation_id=None) -> int:
    with app.app_context():
        statement = select(func.count()).select_from(Message)
        if conversation_id is not None:
            statement = statement.where(Message.conversation_id == uuid.UUID(conversation_id))
        return db.session.scalar(statement)


def assert_overloaded(response) -> None:
    assert_error(response, 503, "overloaded")
    assert int(response.headers["Retry-After"]) > 0


def memory_bus(app) -> None:
    """Live delivery in this un-monkey-patched test process: on the production backend the
    Redis bus's blocking reader would stall it, so the in-memory bus stands in (PostgreSQL
    and the admission stay); the integration tests run the Redis bus in real servers."""
    if not isinstance(get_bus(app), MemoryBus):
        app.extensions["bestchat_bus"] = MemoryBus(maxlen=app.config["STREAM_MAXLEN"], ttl=app.config["STREAM_TTL"])


def start_streaming(app, client) -> dict:
    """An answer that holds the only slot (streaming, waiting for the gated provider)."""
    answer = answer_of(send(client, new_conversation(client), "first"))
    assert answer["status"] == "pending"
    wait_for(lambda: row(app, answer["id"]).status == "streaming")
    return answer


# ---- in-process jobs (both backends) ----------------------------------------------------------

def test_a_send_beyond_capacity_is_queued_and_completes_once_a_slot_frees(app, client, user, gated):
    memory_bus(app)
    first = start_streaming(app, client)
    conversation_id = new_conversation(client)
    created = []
    get_bus(app).subscribe(conversation_id, lambda delivery: created.append(delivery.event))

    second = answer_of(send(client, conversation_id, "second"))
    assert second["status"] == "queued"
    announced = [e["message"] for e in created if e["type"] == events.CREATED]
    assert [(m["role"], m["status"]) for m in announced] == [("user", "complete"), ("assistant", "queued")]
    listed = client.get(f"{API}/conversations/{conversation_id}/messages").get_json()["messages"]
    assert listed[-1]["id"] == second["id"] and listed[-1]["status"] == "queued"
    assert row(app, second["id"]).status == "queued"

    GatedProvider.feed.put("one")
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, first["id"]).status == "complete")
    GatedProvider.feed.put("two")
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, second["id"]).status == "complete")
    assert row(app, second["id"]).content == "two"
    wait_for(lambda: client.get("/readyz").get_json()["generation"]["in_flight"] == 0)


def test_beyond_the_queue_limit_a_send_is_refused_and_nothing_is_stored(app, client, user, gated):
    first = start_streaming(app, client)
    waiting = answer_of(send(client, new_conversation(client), "waits"))
    assert waiting["status"] == "queued"
    refused_in = new_conversation(client)
    before = client.get(f"{API}/conversations/{refused_in}").get_json()

    assert_overloaded(send(client, refused_in, "refused"))
    assert message_count(app, refused_in) == 0
    assert client.get(f"{API}/conversations/{refused_in}").get_json()["updated_at"] == before["updated_at"]
    stored = message_count(app)
    regenerate = client.post(f"{API}/messages/{first['id']}/regenerate")  # still streaming: 409 first
    assert_error(regenerate, 409, "generation_in_progress")
    assert message_count(app) == stored

    for text in ("one", None, "two", None):
        GatedProvider.feed.put(text)
    wait_for(lambda: row(app, waiting["id"]).status == "complete")
    again = answer_of(send(client, refused_in, "now there is room"))  # refusal is not sticky
    assert again["status"] == "pending"
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, again["id"]).status == "complete")


def test_regenerate_and_edit_are_admitted_like_a_send(app, client, user, gated):
    conversation_id = new_conversation(client)
    first = answer_of(send(client, conversation_id, "question"))
    GatedProvider.feed.put(None)
    wait_for(lambda: row(app, first["id"]).status == "complete")
    start_streaming(app, client)
    answer_of(send(client, new_conversation(client), "waits"))  # fills the queue

    assert_overloaded(client.post(f"{API}/messages/{first['id']}/regenerate"))
    assert_overloaded(client.patch(f"{API}/messages/{first['parent_id']}", {"content": "edited"}))
    assert message_count(app, conversation_id) == 2


def test_a_queued_answer_can_be_cancelled_and_gives_its_place_back(app, client, user, gated):
    first = start_streaming(app, client)
    queued = answer_of(send(client, new_conversation(client), "never mind"))
    assert queued["status"] == "queued"

    cancelled = client.post(f"{API}/messages/{queued['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["message"]["status"] == "cancelled"
    final = [d.event for d in get_bus(app).replay(queued["id"])][-1]
    assert final["type"] == events.COMPLETED and final["status"] == "cancelled"
    replacement = answer_of(send(client, new_conversation(client), "instead"))  # the queue has room again
    assert replacement["status"] == "queued"

    for text in ("one", None, "three", None):
        GatedProvider.feed.put(text)
    wait_for(lambda: row(app, replacement["id"]).status == "complete")
    assert row(app, first["id"]).content == "one" and row(app, replacement["id"]).content == "three"
    message = row(app, queued["id"])
    assert message.status == "cancelled" and message.content == "" and message.last_seq == 0
    assert [p[-2]["content"] for p in GatedProvider.prompts] == ["first", "instead"]  # never generated


@pytest.fixture
def roomy_queue(app):
    app.config["GENERATION_QUEUE_LIMIT"] = 10
    get_admission(app).queue_limit = 10


def test_more_sends_than_the_pool_do_not_block_and_run_in_order(app, client, user, gated, roomy_queue):
    conversations = [new_conversation(client) for _ in range(4)]
    answers = [answer_of(send(client, conversation_id, f"question {i}"))
               for i, conversation_id in enumerate(conversations)]  # would block on a full pool
    assert [a["status"] for a in answers] == ["pending", "queued", "queued", "queued"]

    for i, answer in enumerate(answers):
        GatedProvider.feed.put(f"answer {i}")
        GatedProvider.feed.put(None)
        wait_for(lambda: row(app, answer["id"]).status == "complete")
    assert [row(app, a["id"]).content for a in answers] == [f"answer {i}" for i in range(4)]
    assert [p[-2]["content"] for p in GatedProvider.prompts] == [f"question {i}" for i in range(4)]


def test_over_websocket_a_queued_answer_is_announced_and_a_refusal_is_an_error_frame(app, client, user, gated):
    memory_bus(app)
    start_streaming(app, client)
    with SocketClient(app, user["id"]) as socket:
        waits, refused = new_conversation(client), new_conversation(client)
        socket.send({"type": "send", "conversation_id": waits, "content": "waits", "client_id": "w"})
        frames = [socket.receive() for _ in range(2)]
        assert [(f["type"], f["message"]["role"], f["message"]["status"], f["client_id"]) for f in frames] == [
            ("message.created", "user", "complete", "w"), ("message.created", "assistant", "queued", "w")]

        assert row(app, frames[1]["message"]["id"]).status == "queued"  # (stored as announced)

        before = client.get(f"{API}/conversations/{refused}").get_json()["updated_at"]
        error = socket.ask({"type": "send", "conversation_id": refused, "content": "no room", "client_id": "r"})
        assert error["type"] == "error" and error["code"] == "overloaded" and error["message"]
        assert message_count(app, refused) == 0
        assert client.get(f"{API}/conversations/{refused}").get_json()["updated_at"] == before
        assert socket.ask({"type": "ping"}) == {"type": "pong"}  # the socket stays usable


@pytest.mark.parametrize("command", ["send", "typing"])
def test_a_socket_of_an_account_disabled_meanwhile_is_refused_and_closed(app, client, user, command):
    memory_bus(app)
    conversation_id = new_conversation(client, model="demo/demo")
    with SocketClient(app, user["id"]) as socket:
        with app.app_context():
            db.session.execute(update(User).where(User.id == uuid.UUID(user["id"])).values(disabled=True))
            db.session.commit()
        socket.send({"type": command, "conversation_id": conversation_id, "content": "hi"})
        frames = socket.frames_until_closed()
        assert [(f["type"], f["code"]) for f in frames] == [("error", "unauthorized")]
        assert socket.closed == (1008, "account inactive")
        assert message_count(app, conversation_id) == 0


def test_the_openai_endpoint_is_refused_before_creating_a_conversation(app, client, user, gated):
    start_streaming(app, client)
    answer_of(send(client, new_conversation(client), "waits"))
    token = client.post(f"{API}/tokens", {"name": "sdk"}).get_json()["token"]
    sdk = client.new()
    sdk.bearer = token
    with app.app_context():
        conversations_before = db.session.scalar(select(func.count()).select_from(Conversation))

    response = sdk.post("/v1/chat/completions", {"model": "gated/g", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]})
    assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert response.get_json()["error"]["code"] == "overloaded"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Conversation)) == conversations_before


# ---- Redis admission: Celery workers' slots (production backend) -------------------------------

@pytest.fixture
def celery_jobs():
    """Jobs go to Celery and the Redis admission counts (production backend only; see
    ``app_config``)."""


@pytest.fixture
def one_worker(app, celery_jobs):
    slots = WorkerSlots(get_admission(app).redis, "test-worker:1", 1)
    slots.register()
    yield slots
    slots.unregister()


def died_while_streaming(app, message_id) -> None:
    """A worker took the answer (``streaming``), then died without a word."""
    with app.app_context():
        db.session.execute(update(Message).where(Message.id == uuid.UUID(str(message_id)))
                           .values(status="streaming", updated_at=utcnow()))
        db.session.commit()


def run_job(app, message_id) -> None:
    """What a worker does with the job: the task itself, in this process."""
    from bestchat.tasks.generation import generate

    memory_bus(app)
    generate(message_id)


def test_celery_sends_beyond_the_workers_slots_are_queued_then_refused(app, client, user, one_worker):
    assert isinstance(get_admission(app), RedisAdmission)
    first = answer_of(send(client, new_conversation(client, "demo/demo"), "one"))
    second = answer_of(send(client, new_conversation(client, "demo/demo"), "two"))
    assert (first["status"], second["status"]) == ("pending", "queued")
    third_in = new_conversation(client, "demo/demo")
    assert_overloaded(send(client, third_in, "three"))
    assert message_count(app, third_in) == 0
    assert client.get("/readyz").get_json()["generation"] == {"capacity": 1, "in_flight": 2, "queue_limit": 1}

    run_job(app, first["id"])  # the worker's slot frees when the job ends
    assert row(app, first["id"]).status == "complete"
    third = answer_of(send(client, third_in, "three"))
    assert third["status"] == "queued"
    run_job(app, second["id"])
    run_job(app, third["id"])
    assert row(app, second["id"]).status == row(app, third["id"]).status == "complete"
    assert client.get("/readyz").get_json()["generation"]["in_flight"] == 0


def test_with_no_worker_registered_sends_stay_pending_and_are_not_refused(app, client, user, celery_jobs):
    answers = [answer_of(send(client, new_conversation(client, "demo/demo"))) for _ in range(3)]
    assert [a["status"] for a in answers] == ["pending"] * 3
    assert client.get("/readyz").get_json()["generation"]["capacity"] == 0


def test_a_send_refused_for_another_reason_leaves_nothing_in_flight(app, client, user, one_worker):
    """The admission runs while the send reads its conversation: a send refused by that read
    (unknown or someone else's conversation, an answer still running) gives its place back."""
    busy_in = new_conversation(client, "demo/demo")
    answer_of(send(client, busy_in, "one"))  # pending: no worker runs it
    assert_error(send(client, busy_in, "two"), 409, "generation_in_progress")
    assert_error(send(client, str(uuid.uuid4())), 404, "not_found")
    mallory = client.new()
    mallory.signup("mallory@example.com", "mallory horse battery")
    assert_error(send(mallory, busy_in, "mine?"), 404, "not_found")
    gevent.sleep(0)  # (any admission greenlet left behind runs now: this process is not patched)
    assert client.get("/readyz").get_json()["generation"]["in_flight"] == 1
    assert message_count(app, busy_in) == 2


def test_an_unreachable_queue_refuses_the_send_with_503_and_nothing_is_stored(app, client, user, celery_jobs):
    conversation_id = new_conversation(client, "demo/demo")
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # (nothing listens)
    app.extensions["bestchat_admission"] = RedisAdmission(unreachable, queue_limit=1)

    response = send(client, conversation_id)
    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert message_count(app, conversation_id) == 0


def test_the_reaper_frees_the_slot_of_a_job_that_died(app, client, user, one_worker):
    app.config["GENERATION_QUEUE_LIMIT"] = get_admission(app).queue_limit = 0
    app.config["REAPER_STALE_AFTER"] = 0
    lost = answer_of(send(client, new_conversation(client, "demo/demo")))
    died_while_streaming(app, lost["id"])
    blocked_in = new_conversation(client, "demo/demo")
    assert_overloaded(send(client, blocked_in, "blocked"))

    time.sleep(0.01)  # REAPER_STALE_AFTER=0: anything older than now is stale
    with app.app_context():
        assert reap(app) == 1
    assert row(app, lost["id"]).status == "interrupted"
    assert answer_of(send(client, blocked_in, "accepted"))["status"] == "pending"


def test_worker_slots_add_up_and_expire_unless_refreshed(app, celery_jobs):
    admission = get_admission(app)
    steady = WorkerSlots(admission.redis, "steady:1", 5)
    fading = WorkerSlots(admission.redis, "fading:2", 3, ttl=1)
    steady.register()
    fading.register()
    assert admission.status()["capacity"] == 8
    wait_for(lambda: admission.status()["capacity"] == 5)  # fading stopped refreshing
    steady.unregister()
    assert admission.status()["capacity"] == 0


def test_a_celery_worker_registers_its_concurrency_while_it_runs(app, client, celery_jobs):
    from celery.contrib.testing.worker import start_worker

    celery = app.extensions["celery"]
    assert celery.conf.broker_url == TEST_REDIS_URL
    with start_worker(celery, pool="solo", concurrency=3, perform_ping_check=False, shutdown_timeout=30):
        assert client.get("/readyz").get_json()["generation"]["capacity"] == 3
    assert client.get("/readyz").get_json()["generation"]["capacity"] == 0
