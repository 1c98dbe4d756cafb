"""The reaper reaps each message on its own: one that cannot be saved is left for the next
pass and never stops the others, and a stream holding text the database cannot store (chunks
published by a worker that did not repair them) is saved as U+FFFD. Both backends."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from bestchat.extensions import db
from bestchat.models import Message
from bestchat.models.base import utcnow
from bestchat.reaper import reap
from bestchat.store import get_store
from bestchat.streaming import events, get_bus
from tests.chat_fakes import GatedProvider, app_config, gated, wait_for  # noqa: F401

API = "/api/v1"


def orphaned_answers(app, client, count: int) -> list[dict]:
    """``count`` answers whose worker died mid-stream, each with a first chunk published and
    a heartbeat older than the reaper's limit."""
    answers = []
    for _ in range(count):
        conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
        response = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "hi"})
        assert response.status_code == 202, response.get_json()
        answers.append(response.get_json()["assistant_message"])
    for answer in answers:
        wait_for(lambda a=answer: status(app, a["id"]) == "streaming")
    app.extensions["bestchat_dispatcher"].pool.kill()  # the "worker" dies without a word
    with app.app_context():
        for answer in answers:
            get_bus(app).append_many([(answer["conversation_id"], answer["id"], events.chunk(
                message_id=answer["id"], conversation_id=answer["conversation_id"], seq=1, delta="Hello"))])
        stale = utcnow() - timedelta(seconds=app.config["REAPER_STALE_AFTER"] + 5)
        db.session.execute(update(Message).where(Message.id.in_([uuid.UUID(a["id"]) for a in answers]))
                           .values(updated_at=stale))
        db.session.commit()
    return answers


def status(app, message_id) -> str:
    with app.app_context():
        return db.session.get(Message, uuid.UUID(message_id)).status


def test_a_message_that_cannot_be_saved_does_not_stop_the_others(app, client, user, gated, monkeypatch):
    answers = orphaned_answers(app, client, 3)
    broken = uuid.UUID(answers[0]["id"])
    store = get_store(app)
    interrupt = store.interrupt

    def failing_for_one(message, stale_before=None):
        if message.id == broken:
            db.session.execute(update(Message).where(Message.id == broken).values(content="x"))
            raise RuntimeError("the database refused this row")
        return interrupt(message, stale_before=stale_before)

    monkeypatch.setattr(store, "interrupt", failing_for_one)
    with app.app_context():
        assert reap(app) == 2
    assert [status(app, a["id"]) for a in answers] == ["streaming", "interrupted", "interrupted"]
    with app.app_context():  # the failed row's transaction was rolled back
        assert db.session.get(Message, broken).content == ""

    monkeypatch.undo()
    with app.app_context():
        assert reap(app) == 1  # the next pass tries again
    assert status(app, answers[0]["id"]) == "interrupted"


def test_a_stream_with_text_the_database_cannot_store_is_reaped_as_u_fffd(app, client, user, gated):
    answer, other = orphaned_answers(app, client, 2)
    get_bus(app).append_many([(answer["conversation_id"], answer["id"], events.chunk(
        message_id=answer["id"], conversation_id=answer["conversation_id"], seq=2, delta=" \x00\ud800"))])
    with app.app_context():
        assert reap(app) == 2
        message = db.session.get(Message, uuid.UUID(answer["id"]))
        assert (message.status, message.content, message.last_seq) == ("interrupted", "Hello \ufffd\ufffd", 2)
        assert db.session.get(Message, uuid.UUID(other["id"])).content == "Hello"
    final = [d.event for d in get_bus(app).replay(answer["id"], 0)][-1]
    assert final["type"] == events.FAILED and final["error"]["code"] == "interrupted"
