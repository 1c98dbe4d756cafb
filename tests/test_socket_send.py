"""A ``send`` (over the WebSocket, and with attachments over REST), at the service's edge: what
is stored and announced, and what a refused send leaves (nothing). On PostgreSQL a send is one
statement of the message store (:mod:`bestchat.store.postgresql`: read, checks and write
together); on SQLite a read then a write in one transaction. Both backends, jobs in this
process (the gated provider: an answer runs until the test ends it); the socket is driven
through its public surface (:meth:`ChatSocket.run` over a stand-in WebSocket)."""

from __future__ import annotations

import uuid
from datetime import datetime

import gevent
import psycopg
import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import Conversation, FileUpload, Message
from tests.chat_fakes import GatedProvider, gated, wait_for  # noqa: F401 - gated is a fixture
from tests.socket_client import SocketClient

API = "/api/v1"


@pytest.fixture
def app_config():
    return {"JOBS_IN_PROCESS": True}


@pytest.fixture
def socket(app, user, gated):
    with SocketClient(app, user["id"]) as client:
        yield client


def send(socket, conversation_id, content, **extra):
    """Send over ``socket``: the two ``message.created`` events, or the error frame (the
    earlier answers' frames still coming are passed over)."""
    socket.send({"type": "send", "conversation_id": conversation_id, "content": content, **extra})
    frames = socket.receive_until("message.created", 2)
    if frames[-1]["type"] == "error":
        return frames[-1]
    return tuple(frame for frame in frames if frame["type"] == "message.created")


def stored(app, conversation_id):
    """The conversation's messages (oldest first) and its ``updated_at``, as stored."""
    with app.app_context():
        messages = db.session.scalars(select(Message).where(Message.conversation_id == uuid.UUID(conversation_id))
                                      .order_by(Message.created_at)).all()
        updated_at = db.session.get(Conversation, uuid.UUID(conversation_id)).updated_at
        return [(str(m.id), str(m.parent_id) if m.parent_id else None, m.role, m.status, m.model, m.content)
                for m in messages], updated_at


def finish_answer(app, answer_id):
    GatedProvider.feed.put("done")
    GatedProvider.feed.put(None)
    wait_for(lambda: stored_status(app, answer_id) == "complete")


def stored_status(app, message_id):
    with app.app_context():
        return db.session.get(Message, uuid.UUID(message_id)).status


def test_a_send_follows_the_newest_message_and_is_announced_as_stored(app, client, socket):
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    question, answer = send(socket, conversation_id, "first question", client_id="c1")
    assert (question["message"]["parent_id"], answer["message"]["parent_id"]) == (None, question["message"]["id"])
    assert answer["message"]["model"] == "gated/g" and answer["client_id"] == "c1"
    finish_answer(app, answer["message"]["id"])
    client.patch(f"{API}/conversations/{conversation_id}", {"model": "demo/demo"})

    second_q, second_a = send(socket, conversation_id, "second question", model="gated/g")
    rows, updated_at = stored(app, conversation_id)
    assert rows[2:] == [
        (second_q["message"]["id"], answer["message"]["id"], "user", "complete", None, "second question"),
        (second_a["message"]["id"], second_q["message"]["id"], "assistant", rows[3][3], "gated/g", ""),
    ]
    assert rows[3][3] in ("pending", "streaming")  # (its job may have claimed it already)
    assert second_q["message"]["parent_id"] == answer["message"]["id"]
    assert second_a["message"]["model"] == "gated/g" and second_a["message"]["status"] == "pending"
    sent_at = datetime.fromisoformat(second_q["message"]["created_at"].replace("Z", "+00:00"))
    assert updated_at.replace(tzinfo=None) == sent_at.replace(tzinfo=None)  # (SQLite's are naive UTC)
    shown = client.get(f"{API}/conversations/{conversation_id}/messages").get_json()["messages"]
    assert [m["id"] for m in shown][-2:] == [second_q["message"]["id"], second_a["message"]["id"]]
    finish_answer(app, second_a["message"]["id"])


def test_a_send_while_the_answer_runs_is_refused_and_changes_nothing(app, client, socket):
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    _question, answer = send(socket, conversation_id, "first")
    before = stored(app, conversation_id)

    error = send(socket, conversation_id, "too soon")
    assert (error["type"], error["code"]) == ("error", "generation_in_progress")
    assert stored(app, conversation_id) == before
    finish_answer(app, answer["message"]["id"])


def test_a_send_to_someone_elses_or_no_conversation_is_not_found_and_changes_nothing(app, client, socket):
    mallory = client.new()
    mallory.signup("mallory@example.com", "mallory horse battery")
    theirs = mallory.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    before = stored(app, theirs)
    for conversation_id in (theirs, str(uuid.uuid4())):
        error = send(socket, conversation_id, "mine?")
        assert (error["type"], error["code"]) == ("error", "not_found")
    assert stored(app, theirs) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Message)) == 0
    mallory.patch(f"{API}/conversations/{theirs}", {"title": "renamed"})  # (announced to its followers)
    assert socket.ask({"type": "ping"}) == {"type": "pong"}  # the refused send followed nothing


def test_on_postgresql_a_socket_send_is_one_statement_even_the_first(app, client, socket, backend, monkeypatch):
    if backend != "production":
        pytest.skip("the one-statement send is PostgreSQL's")
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    _question, answer = send(socket, conversation_id, "the socket learns it owns the conversation")
    finish_answer(app, answer["message"]["id"])
    statements = []
    execute = psycopg.Cursor.execute

    def counted(cursor, query, *args, **kwargs):
        if gevent.getcurrent() is socket.handler:  # (not the answer's job, which runs meanwhile)
            statements.append(query)
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counted)
    _question, answer = send(socket, conversation_id, "one round trip")
    monkeypatch.undo()
    assert len(statements) == 1 and "INSERT INTO messages" in statements[0]
    finish_answer(app, answer["message"]["id"])


def drop_pooled_connection(app) -> None:
    """The database drops the connection the main pool gives out next (as a restart would),
    unknown to the pool: a send's store statement and a generation's claim take it, as their
    sessions hold no connection then (:func:`bestchat.database.run_prepared`)."""
    with app.app_context(), db.engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    # (closed: back to the top of the pool)
    with psycopg.connect(app.config["DATABASE_URL"].replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_on_postgresql_a_dropped_connection_fails_one_send_and_is_replaced(app, client, socket, backend):
    if backend != "production":
        pytest.skip("PostgreSQL's connections")
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    _question, answer = send(socket, conversation_id, "the socket learns it owns the conversation")
    finish_answer(app, answer["message"]["id"])
    before = stored(app, conversation_id)
    drop_pooled_connection(app)
    error = send(socket, conversation_id, "lost")
    assert (error["type"], error["code"]) == ("error", "internal_error")
    assert stored(app, conversation_id) == before
    _question, answer = send(socket, conversation_id, "again")  # a fresh connection
    finish_answer(app, answer["message"]["id"])


def test_on_postgresql_a_generation_claims_its_answer_through_a_dropped_connection(app, client, user, gated, backend):
    if backend != "production":
        pytest.skip("PostgreSQL's connections")
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    sent = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "claim me"})
    answer_id = sent.get_json()["assistant_message"]["id"]  # (its job has not run yet: nothing yielded)
    drop_pooled_connection(app)
    gevent.sleep(0.2)  # the job runs now: its claim gets the dropped connection first
    wait_for(lambda: stored_status(app, answer_id) == "streaming")
    finish_answer(app, answer_id)


def test_a_send_with_attachments_stores_their_parts_and_someone_elses_upload_is_not_found(app, client, user, gated):
    conversation_id = client.post(f"{API}/conversations", {"model": "gated/g"}).get_json()["id"]
    mallory = client.new()
    theirs_user = mallory.signup("mallory@example.com", "mallory horse battery")
    with app.app_context():
        uploads = [FileUpload(user_id=uuid.UUID(owner), name=name, size=5, sha256="0" * 64, mime="text/plain",
                              storage_key=f"key-{name}") for owner, name in ((user["id"], "mine.txt"),
                                                                             (theirs_user["id"], "theirs.txt"))]
        db.session.add_all(uploads)
        db.session.commit()
        mine, theirs = (str(upload.id) for upload in uploads)

    refused = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "see", "attachments": [theirs]})
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "not_found"
    assert stored(app, conversation_id)[0] == []

    sent = client.post(f"{API}/conversations/{conversation_id}/messages", {"content": "see", "attachments": [mine]})
    assert sent.status_code == 202
    question = sent.get_json()["user_message"]
    expected = [{"type": "file", "upload_id": mine, "name": "mine.txt", "mime": "text/plain"}]
    assert question["parts"] == expected
    with app.app_context():
        assert db.session.get(Message, uuid.UUID(question["id"])).parts == expected
    finish_answer(app, sent.get_json()["assistant_message"]["id"])
