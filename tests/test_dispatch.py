"""The dispatcher port (:mod:`bestchat.dispatch`): chosen once from the settings, it announces an
answer to the conversation's followers and then starts its job, in that order: in this
process on the in-process pool, or for Celery workers as a task message pushed onto the Redis
broker right after the events' PUBLISHes (one round trip). What happens to an answer whose
job cannot be started is the conversation service's side (tests/test_celery_message.py)."""

from __future__ import annotations

import base64
import json
import uuid
from types import SimpleNamespace

import gevent
import pytest
from gevent.event import Event

from bestchat import redis_client
from bestchat.dispatch import GENERATE_TASK, get_dispatcher
from bestchat.dispatch import celery as dispatch_celery
from bestchat.dispatch.celery import CeleryDispatcher
from bestchat.dispatch.in_process import InProcessDispatcher
from bestchat.redis_client import get_redis
from bestchat.services.admission import InProcessAdmission, RedisAdmission, get_admission
from bestchat.streaming import events, get_bus
from bestchat.streaming.bus import Delivery
from bestchat.streaming.memory_bus import MemoryBus
from bestchat.streaming.redis_bus import CHANNEL

QUEUE = "bestchat"  # celery_app's task_default_queue


def new_answer() -> SimpleNamespace:
    return SimpleNamespace(id=uuid.uuid4(), conversation_id=uuid.uuid4())


def announcement(answer) -> list[dict]:
    conversation_id = str(answer.conversation_id)
    return [{"type": events.CREATED, "conversation_id": conversation_id, "message": {"id": name}}
            for name in ("question", str(answer.id))]


class RecordingTask:
    """Stands in for the generation task: records each run in ``log``."""

    name = GENERATE_TASK

    def __init__(self, log: list, gate=None):
        self.log = log
        self.gate = gate

    def __call__(self, message_id: str) -> None:
        self.log.append(("job", message_id))
        if self.gate is not None:
            self.gate.wait()


def in_process(app, log: list, size: int = 2, gate=None) -> InProcessDispatcher:
    return InProcessDispatcher(SimpleNamespace(tasks={GENERATE_TASK: RecordingTask(log, gate)}), size)


@pytest.fixture
def app_config(request, backend):
    """The settings a test is parametrized with (indirect), else none."""
    config = getattr(request, "param", {})
    if config.get("JOBS_IN_PROCESS") is False and backend != "production":
        pytest.skip("Celery jobs need Redis (tests/test_app.py checks the refusal)")
    return config


class RemoteBus(MemoryBus):
    """A memory bus whose broadcasts take a while and yield meanwhile, as a round trip to Redis
    does in a gevent process (where the job's greenlet could then start first)."""

    def broadcast_many(self, conversation_id, events_):
        gevent.sleep(0.01)
        super().broadcast_many(conversation_id, events_)


@pytest.fixture
def memory_bus(app):
    """Live delivery in this un-monkey-patched test process: a memory bus."""
    app.extensions["bestchat_bus"] = RemoteBus(maxlen=100, ttl=60)
    return get_bus(app)


# ---- chosen once from the settings -----------------------------------------------------------

@pytest.mark.parametrize("app_config", [{}, {"JOBS_IN_PROCESS": True}, {"JOBS_IN_PROCESS": False}],
                         indirect=True)
def test_the_dispatcher_and_the_admission_follow_where_jobs_run(app, backend, app_config):
    dispatcher = get_dispatcher(app)
    in_process = app_config.get("JOBS_IN_PROCESS", backend == "embedded")
    assert dispatcher.in_process is in_process
    assert isinstance(dispatcher, InProcessDispatcher if in_process else CeleryDispatcher)
    assert isinstance(get_admission(app), InProcessAdmission if in_process else RedisAdmission)


# ---- in process -------------------------------------------------------------------------------

def test_in_process_the_events_go_out_before_the_job_starts(app, memory_bus):
    log: list = []
    dispatcher = in_process(app, log)
    answer = new_answer()
    memory_bus.subscribe(str(answer.conversation_id), lambda delivery: log.append(("event", delivery.event)))
    with app.app_context():
        dispatcher.announce_and_start(answer, announcement(answer))
    assert dispatcher.join(5)
    assert log == [*(("event", event) for event in announcement(answer)), ("job", str(answer.id))]


def test_in_process_jobs_beyond_the_pool_wait_in_order(app, memory_bus):
    log: list = []
    gate = Event()
    dispatcher = in_process(app, log, size=1, gate=gate)
    answers = [new_answer() for _ in range(3)]
    with app.app_context():
        for answer in answers:
            dispatcher.announce_and_start(answer, [])  # returns at once, whatever is running
    assert not dispatcher.join(0.05)
    assert log == [("job", str(answers[0].id))]  # one slot: the others wait
    gate.set()
    assert dispatcher.join(5)
    assert log == [("job", str(answer.id)) for answer in answers]


def test_in_process_kill_drops_waiting_jobs(app, memory_bus):
    log: list = []
    dispatcher = in_process(app, log, size=1, gate=Event())
    with app.app_context():
        for answer in (new_answer(), new_answer()):
            dispatcher.announce_and_start(answer, [])
    assert not dispatcher.join(0.05)
    dispatcher.kill(timeout=5)
    assert dispatcher.join(1) and len(log) == 1


# ---- Celery -----------------------------------------------------------------------------------

@pytest.mark.parametrize("app_config", [{"JOBS_IN_PROCESS": False}], indirect=True)
def test_celery_publishes_the_events_then_pushes_the_job_in_one_round_trip(app, app_config, monkeypatch):
    batches = []

    def run_commands(client, commands):
        batches.append([command[0] for command in commands])
        return redis_client.run_commands(client, commands)

    monkeypatch.setattr(dispatch_celery, "run_commands", run_commands)
    redis = get_redis(app)
    database = redis.connection_pool.connection_kwargs.get("db", 0)
    answer = new_answer()
    pubsub = redis.pubsub()
    pubsub.subscribe(CHANNEL + str(answer.conversation_id))
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    with redis.monitor() as monitor:
        with app.app_context():
            get_dispatcher(app).announce_and_start(answer, announcement(answer))
        seen = []
        while not seen or seen[-1] != "LPUSH":
            command = monitor.next_command()
            if command["db"] == database and command["command"].split(" ", 1)[0] in ("PUBLISH", "LPUSH"):
                seen.append(command["command"].split(" ", 1)[0])
    assert batches == [["PUBLISH", "PUBLISH", "LPUSH"]]  # one round trip
    assert seen == ["PUBLISH", "PUBLISH", "LPUSH"]  # as Redis ran them

    received = [pubsub.get_message(timeout=5) for _ in range(2)]
    pubsub.close()
    assert [Delivery.from_wire(message["data"]).event for message in received] == announcement(answer)
    (raw,) = redis.lrange(QUEUE, 0, -1)
    job = json.loads(raw)
    assert job["headers"]["task"] == GENERATE_TASK
    assert json.loads(base64.b64decode(job["body"]))[0] == [str(answer.id)]
