"""The console's read-only Conversations page: access control, filters and paging, content shown
as text, and one audit row per opened conversation (none for listing)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import AuditLog, Conversation, Message
from bestchat.models.base import utcnow
from tests.console_data import ADMIN, seed_usage, sign_in_admin, user_id


def viewed(app) -> list[AuditLog]:
    with app.app_context():
        return db.session.scalars(select(AuditLog).where(AuditLog.action == "conversation.viewed_by_admin")).all()


def add_chat(app, email: str, title: str, contents=(("user", "hello"),), **fields) -> str:
    with app.app_context():
        chat = Conversation(user_id=user_id(email), title=title, **fields)
        db.session.add(chat)
        db.session.flush()
        for i, (role, content) in enumerate(contents):
            db.session.add(Message(conversation_id=chat.id, role=role, content=content,
                                   created_at=utcnow() + timedelta(seconds=i)))
        db.session.commit()
        return str(chat.id)


def listing(admin, **query) -> str:
    response = admin.get("/admin/conversations/", query_string=query)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return page[page.index('id="conversations-table"'):]


def test_anonymous_visitors_are_sent_to_sign_in(app, client):
    seeded = seed_usage(app)
    for path in ("/admin/conversations/", f"/admin/conversations/{seeded['bob']}"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/login?next={path}"
    assert viewed(app) == []


def test_non_admins_are_refused(app, client, user):
    seeded = seed_usage(app)
    assert client.get("/admin/conversations/").status_code == 403
    assert client.get(f"/admin/conversations/{seeded['bob']}").status_code == 403
    assert viewed(app) == []


def test_no_unsafe_method_is_offered(app):
    seeded = seed_usage(app)
    admin = sign_in_admin(app)
    for method in ("POST", "PUT", "DELETE"):
        assert admin.http.open(f"/admin/conversations/{seeded['bob']}", method=method).status_code in (403, 405)
        assert admin.http.open("/admin/conversations/", method=method).status_code in (403, 405)
    with app.app_context():
        assert db.session.get(Conversation, uuid.UUID(str(seeded["bob"]))) is not None


def test_listing_filters_and_writes_nothing(app):
    seeded = seed_usage(app)
    admin = sign_in_admin(app)
    add_chat(app, "carol@example.com", "Invoice question 100%")
    everything = listing(admin)
    assert everything.count("<tr>") == 7  # header + 6 conversations
    assert "Invoice question" in everything.split("</tr>")[1]  # most recently active first
    assert listing(admin, owner="BOB@").count("<tr>") == 2
    assert listing(admin, title="invoice").count("<tr>") == 2
    assert listing(admin, title="%").count("<tr>") == 2  # wildcards are taken literally
    assert listing(admin, model="demo/echo").count("<tr>") == 3
    assert listing(admin, model="gpt-4o").count("<tr>") == 4
    assert "No conversation matches" in listing(admin, owner="nobody")
    assert listing(admin, status="complete").count("<tr>") == 6  # each seeded chat's answer is complete
    assert "No conversation matches" in listing(admin, status="failed")
    with app.app_context():
        db.session.execute(Message.__table__.update()
                           .where(Message.conversation_id == uuid.UUID(str(seeded["bob"])),
                                  Message.role == "assistant").values(status="failed"))
        db.session.commit()
    failed = listing(admin, status="failed")
    assert failed.count("<tr>") == 2 and f"/admin/conversations/{seeded['bob']}" in failed
    assert viewed(app) == []


def test_date_range_filters_on_last_activity(app):
    seed_usage(app)  # every seeded conversation was last active in 2026-02/03
    admin = sign_in_admin(app)
    add_chat(app, "carol@example.com", "Today")
    today = utcnow().date().isoformat()
    rows = listing(admin, **{"from": today, "to": today})
    assert rows.count("<tr>") == 2 and "Today" in rows
    assert listing(admin, **{"from": "2026-03-02", "to": "2026-03-02"}).count("<tr>") == 2


@pytest.mark.parametrize("query", [{"from": "someday"}, {"status": "exploded"},
                                   {"from": "2026-03-05", "to": "2026-03-01"}])
def test_bad_filters_are_a_clear_error(app, query):
    admin = sign_in_admin(app)
    response = admin.get("/admin/conversations/", query_string=query)
    assert response.status_code == 400
    assert "alert-danger" in response.get_data(as_text=True)


def test_pages_of_25_newest_first(app):
    admin = sign_in_admin(app)
    with app.app_context():
        owner = user_id(ADMIN)
        now = utcnow()
        db.session.add_all([Conversation(user_id=owner, title=f"chat {i:02d}", updated_at=now + timedelta(minutes=i))
                            for i in range(30)])
        db.session.commit()
    first = listing(admin)
    assert first.count("<tr>") == 26 and "chat 29" in first and "chat 04" not in first
    page = admin.get("/admin/conversations/?page=2&title=chat").get_data(as_text=True)
    assert "Page 2 of 2" in page and "chat 04" in page and "chat 29" not in page
    assert "page=1" in page and "title=chat" in page  # the links keep the filters
    assert "Page 2 of 2" in admin.get("/admin/conversations/?page=99").get_data(as_text=True)


def test_opening_shows_messages_as_text_and_is_audited_once_per_open(app):
    seed_usage(app)
    admin = sign_in_admin(app)
    chat_id = add_chat(app, "bob@example.com", "<b>Title</b>", [
        ("user", "<script>alert(1)</script> please"),
        ("assistant", "Sure & done"),
    ], provider="openai", model="gpt-4o")
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.role == "user",
                                                          Message.conversation_id == uuid.UUID(chat_id)))
        message.parts = [{"type": "file", "upload_id": str(uuid.uuid4()), "name": "report.pdf", "mime": "application/pdf"}]
        db.session.commit()
    page = admin.get(f"/admin/conversations/{chat_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; please" in page
    assert "<script>alert(1)" not in page
    assert "&lt;b&gt;Title&lt;/b&gt;" in page
    assert "Sure &amp; done" in page and "report.pdf" in page and "bob@example.com" in page
    assert "<form" not in page.split('id="conversation-title"')[1]  # nothing to edit or send
    entries = viewed(app)
    assert len(entries) == 1
    assert entries[0].target_type == "conversation" and entries[0].target_id == chat_id
    with app.app_context():
        assert entries[0].details == {"owner_id": str(user_id("bob@example.com"))}
        assert entries[0].actor_id == user_id(ADMIN)
    admin.get(f"/admin/conversations/{chat_id}")
    assert len(viewed(app)) == 2


def test_opened_answers_show_their_tokens(app):
    seeded = seed_usage(app)
    admin = sign_in_admin(app)
    page = admin.get(f"/admin/conversations/{seeded['alice_tools']}").get_data(as_text=True)
    assert "250 in / 50 out" in page  # both tool rounds of the answer
    assert "openai/gpt-4o" in page and "complete" in page


@pytest.mark.parametrize("bad", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_or_malformed_ids_are_404_and_not_audited(app, bad):
    admin = sign_in_admin(app)
    assert admin.get(f"/admin/conversations/{bad}").status_code == 404
    assert viewed(app) == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action.like("conversation.%"))) == 0
