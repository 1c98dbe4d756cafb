"""The console's home: who may see it, and the figures an operator checks first (version, mode,
readiness, workers, answers in flight and queued, failed plugins, users, today's usage)."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from decimal import Decimal

import pytest

from bestchat import __version__, plugins
from bestchat.extensions import db
from bestchat.models import Conversation, Message, UsageLog
from bestchat.models.base import utcnow
from bestchat.redis_client import get_redis
from bestchat.services import accounts
from bestchat.tasks.worker_slots import WorkerSlots
from bestchat.testing.plugins import write_distribution
from tests.console_data import ADMIN, sign_in_admin, user_id


def figure(page: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}">([^<]*)<', page).group(1).strip()


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in ("/admin/", "/admin"):
        response = client.get(path)
        assert response.status_code in (301, 302, 308)
    response = client.get("/admin/")
    assert response.headers["Location"] == "/login?next=/admin/"


def test_non_admins_and_disabled_admins_are_refused(app, client, user):
    assert client.get("/admin/").status_code == 403
    admin = sign_in_admin(app)
    with app.app_context():
        accounts.find_by_email(ADMIN).disabled = True
        db.session.commit()
    assert admin.get("/admin/").status_code in (302, 403)


def test_unsafe_requests_are_refused(app):
    admin = sign_in_admin(app)
    assert admin.http.post("/admin/").status_code in (403, 405)


def test_home_shows_version_mode_readiness_and_counts(app, backend):
    admin = sign_in_admin(app)
    with app.app_context():
        accounts.register("ann@example.com", "correct horse battery")
        accounts.register("ben@example.com", "correct horse battery")
        ben = accounts.find_by_email("ben@example.com")
        ben.disabled = True
        owner = user_id("ann@example.com")
        chat = Conversation(user_id=owner, title="t")
        db.session.add(chat)
        db.session.flush()
        for status in ("streaming", "streaming", "pending", "queued", "waiting", "complete", "failed"):
            db.session.add(Message(conversation_id=chat.id, role="assistant", status=status))
        now = utcnow()
        db.session.add_all([
            UsageLog(user_id=owner, provider="openai", model="gpt-4o", prompt_tokens=1000,
                     completion_tokens=234, cost=Decimal("0.25"), created_at=now),
            UsageLog(user_id=owner, provider="openai", model="gpt-4o", prompt_tokens=5,
                     completion_tokens=5, cost=Decimal("9"), created_at=now - timedelta(days=2)),
        ])
        db.session.commit()
    page = admin.get("/admin/").get_data(as_text=True)
    assert f"BestChat {__version__}" in page
    assert figure(page, "generations-streaming") == "2"
    assert figure(page, "generations-queued") == "2"
    assert "1 waiting for a tool approval" in page
    assert figure(page, "users-total") == "3"
    assert figure(page, "users-admins") == "1"
    assert figure(page, "users-active") == "2"  # root signed in today; ann has usage today
    assert "1 disabled" in page
    assert figure(page, "today-tokens") == "1,234"
    assert figure(page, "today-cost") == "$0.25"
    assert figure(page, "plugins-failed") == "0 failed"
    assert 'href="/admin/plugins/"' in page
    readiness = page[page.index('id="card-readiness"'):page.index('id="card-generations"')]
    if backend == "production":
        assert "scale-out" in page and "postgresql database, Redis, Celery workers" in page
        assert readiness.count("badge-success\">ok") == 2  # database and Redis
        assert "none registered" in readiness  # no Celery worker runs in the test
    else:
        assert "embedded" in page and "SQLite database, jobs in this process" in page
        assert readiness.count("badge-success\">ok") == 1 and "not used" in readiness
        assert "in-process" in readiness


def test_home_counts_registered_celery_workers(app, backend):
    if backend != "production":
        pytest.skip("Celery workers register in Redis (scale-out mode)")
    admin = sign_in_admin(app)
    client = get_redis(app)
    first, second = WorkerSlots(client, "w1@host:1", 4), WorkerSlots(client, "w2@host:2", 8)
    first.register()
    second.register()
    assert re.search(r">2 up</span>\s*12 slots", workers_cell(admin))
    second.unregister()
    assert re.search(r">1 up</span>\s*4 slots", workers_cell(admin))


def workers_cell(admin) -> str:
    page = admin.get("/admin/").get_data(as_text=True)
    return re.search(r'id="workers-state">(.*?)</td>', page, re.DOTALL).group(1)


def test_home_shows_failed_plugins(app, tmp_path, monkeypatch):
    directory = tmp_path / "site"
    write_distribution(directory, "bestchat-broken", "bestchat_broken_home", 'raise ImportError("nope")\n')
    monkeypatch.syspath_prepend(str(directory))
    plugins.unload_plugins()
    try:
        from bestchat import create_app
        from bestchat.testing.pytest_plugin import make_config

        second = create_app(make_config("embedded", tmp_path / "second"))
        with second.app_context():
            db.create_all()
        page = sign_in_admin(second).get("/admin/").get_data(as_text=True)
        assert figure(page, "plugins-failed") == "1 failed"
        assert "bestchat-broken" in page
    finally:
        plugins.unload_plugins()
        sys.modules.pop("bestchat_broken_home", None)
