"""Data shared by the console's home, usage and conversations tests: signed-in clients for an
admin and a user, and a seed of users, groups, conversations, messages and usage rows whose
aggregates the tests know by heart."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Conversation, Group, GroupMember, Message, UsageLog, User
from bestchat.services import accounts
from bestchat.testing.client import Client

PASSWORD = "correct horse battery"
ADMIN = "root@example.com"
DAY1 = date(2026, 3, 1)
RANGE = {"from": "2026-03-01", "to": "2026-03-03"}


def sign_in(app, email: str, role: str = "user") -> Client:
    with app.app_context():
        if accounts.find_by_email(email) is None:
            accounts.register(email, PASSWORD, role=role)
    client = Client(app)
    client.login(email, PASSWORD)
    return client


def sign_in_admin(app) -> Client:
    return sign_in(app, ADMIN, role="admin")


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


def user_id(email: str):
    return db.session.scalar(select(User.id).where(User.email == email))


def seed_usage(app) -> dict:
    """alice (groups A and B), bob (group A) and carol (no group) with usage over
    2026-03-01..03 and one row on 2026-02-28 (outside ``RANGE``); returns the ids made."""
    with app.app_context():
        for email in ("alice@example.com", "bob@example.com", "carol@example.com"):
            if accounts.find_by_email(email) is None:
                accounts.register(email, PASSWORD)
        alice, bob, carol = (user_id(e) for e in ("alice@example.com", "bob@example.com", "carol@example.com"))
        group_a, group_b = Group(name="Team A"), Group(name="Team B")
        db.session.add_all([group_a, group_b])
        db.session.flush()
        db.session.add_all([GroupMember(group_id=group_a.id, user_id=alice),
                            GroupMember(group_id=group_b.id, user_id=alice),
                            GroupMember(group_id=group_a.id, user_id=bob)])
        ids = {}

        def answer(owner, when, rows, provider="openai", model="gpt-4o"):
            chat = Conversation(user_id=owner, title="Seeded chat", provider=provider, model=model,
                                created_at=when, updated_at=when)
            db.session.add(chat)
            db.session.flush()
            question = Message(conversation_id=chat.id, role="user", content="hi", created_at=when)
            db.session.add(question)
            db.session.flush()
            reply = Message(conversation_id=chat.id, role="assistant", content="hello", parent_id=question.id,
                            provider=provider, model=model, created_at=when + timedelta(seconds=1))
            db.session.add(reply)
            db.session.flush()
            for round_, (prompt, completion, cost) in enumerate(rows):
                db.session.add(UsageLog(user_id=owner, conversation_id=chat.id, message_id=reply.id,
                                        provider=provider, model=model, prompt_tokens=prompt,
                                        completion_tokens=completion, cost=Decimal(cost), round=round_,
                                        created_at=when))
            return chat.id

        day2, day3 = DAY1 + timedelta(days=1), DAY1 + timedelta(days=2)
        ids["alice_tools"] = answer(alice, at(DAY1), [(100, 20, "0.01"), (150, 30, "0.02")])
        ids["alice_late"] = answer(alice, at(DAY1, 23, 30), [(10, 5, "0")], "demo", "echo")
        ids["bob"] = answer(bob, at(day2), [(200, 50, "0.05")])
        ids["carol"] = answer(carol, at(day3, 0, 15), [(1, 1, "0")], "demo", "echo")
        ids["outside"] = answer(alice, at(DAY1 - timedelta(days=1), 23, 59), [(999, 999, "1")])
        db.session.commit()
        return ids


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
