"""The app factory, settings precedence, embedded secrets, the production guard and the
database pool's liveness check."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bestchat import create_app
from bestchat.database import warm_pool
from bestchat.extensions import db
from bestchat.models import Conversation, Message, User
from bestchat.models.message_status import MessageStatus
from bestchat.store import get_store
from bestchat.settings import ConfigurationError
from bestchat.testing.pytest_plugin import TEST_PG_URL, make_config

REPO = Path(__file__).resolve().parent.parent


def test_factory_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("BESTCHAT_DATABASE_URL", raising=False)
    monkeypatch.delenv("BESTCHAT_REDIS_URL", raising=False)
    app = create_app({"INSTANCE_PATH": tmp_path / "inst"})
    assert app.config["EMBEDDED"] is True
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'inst' / 'bestchat.db'}"
    assert not app.testing


def test_embedded_secrets_are_generated_once_and_kept(tmp_path):
    first = create_app({"INSTANCE_PATH": tmp_path})
    second = create_app({"INSTANCE_PATH": tmp_path})
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["ENCRYPTION_KEYS"] == second.config["ENCRYPTION_KEYS"]
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_the_sqlite_database_file_is_private(tmp_path):
    app = create_app({"INSTANCE_PATH": tmp_path, "DATABASE_URL": None})
    with app.app_context():
        from bestchat.extensions import db

        db.create_all()
        db.engine.dispose()
    files = [tmp_path / "bestchat.db", tmp_path / "bestchat.db-wal"]
    assert {oct(path.stat().st_mode & 0o777) for path in files if path.exists()} == {"0o600"}
    assert (tmp_path / "bestchat.db").exists()


def test_environment_overrides_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTCHAT_REGISTRATION_OPEN", "false")
    monkeypatch.setenv("BESTCHAT_MAX_CONTENT_LENGTH", "1000")
    app = create_app({"INSTANCE_PATH": tmp_path})
    assert app.config["REGISTRATION_OPEN"] is False
    assert app.config["MAX_CONTENT_LENGTH"] == 1000


def test_settings_file_is_loaded(tmp_path, monkeypatch):
    settings = tmp_path / "site.py"
    settings.write_text("REGISTRATION_OPEN = False\nPASSWORD_MIN_LENGTH = 12\n")
    monkeypatch.setenv("BESTCHAT_CONFIG", str(settings))
    app = create_app({"INSTANCE_PATH": tmp_path / "inst"})
    assert app.config["PASSWORD_MIN_LENGTH"] == 12


# A production secret key as `secrets.token_urlsafe(48)` makes one.
REAL_SECRET = "q8ZJ3vN0_x7LrWm2Tb9-YhKc4PdUe6SgA1fQiXo5VnBjRtMwEzCkHlDuGyIaOsFp"


@pytest.mark.parametrize("secret", [None, "", "changeme", "short-secret", "s" * 32, "ab" * 20])
def test_production_refuses_missing_default_or_low_entropy_secret(tmp_path, secret):
    with pytest.raises(ConfigurationError) as info:
        create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY=secret,
                               ENCRYPTION_KEYS="x"))
    assert "SECRET_KEY" in str(info.value) and "\n" not in str(info.value)


def test_production_refuses_missing_encryption_keys(tmp_path):
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS"):
        create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY=REAL_SECRET,
                               ENCRYPTION_KEYS=None))


def test_celery_jobs_without_redis_are_refused(tmp_path):
    """Celery workers take their jobs from Redis: with no REDIS_URL the jobs must run in-process."""
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        create_app(make_config("embedded", tmp_path, JOBS_IN_PROCESS=False))


def test_production_starts_with_real_secrets(tmp_path):
    from cryptography.fernet import Fernet

    app = create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY=REAL_SECRET,
                                 ENCRYPTION_KEYS=Fernet.generate_key().decode()))
    assert app.config["SECRET_KEY"] == REAL_SECRET
    assert not (tmp_path / "instance" / "secret_key").exists()


@pytest.mark.parametrize("idle_seconds, replaced", [(0.0, True), (3600.0, False)])
def test_a_connection_the_database_dropped_is_replaced_once_idle(tmp_path, request, idle_seconds, replaced):
    """A pooled connection idle for DATABASE_PING_IDLE_SECONDS is pinged at checkout and
    replaced if the server dropped it; one in steady use is not pinged (and so fails)."""
    if not TEST_PG_URL:
        pytest.skip("needs PostgreSQL")
    request.getfixturevalue("pg_schema")
    app = create_app(make_config("production", tmp_path, DATABASE_PING_IDLE_SECONDS=idle_seconds))
    with app.app_context():
        pid = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.commit()  # back to the pool
        with psycopg.connect(TEST_PG_URL, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        if replaced:
            assert db.session.scalar(text("SELECT pg_backend_pid()")) != pid
        else:
            with pytest.raises(OperationalError):
                db.session.scalar(text("SELECT 1"))
        db.session.rollback()
        db.engine.dispose()


def test_ending_an_answer_survives_a_connection_the_database_dropped(tmp_path, request):
    """A write that must not fail (an answer's end) gets a fresh connection when the one it
    got was dropped while it was too briefly idle to be pinged."""
    if not TEST_PG_URL:
        pytest.skip("needs PostgreSQL")
    request.getfixturevalue("pg_schema")
    app = create_app(make_config("production", tmp_path, DATABASE_PING_IDLE_SECONDS=3600.0))
    with app.app_context():
        user = User(email=f"{uuid.uuid4().hex}@example.com", password_hash="x")
        db.session.add(user)
        db.session.flush()
        conversation = Conversation(user_id=user.id, title="t")
        answer = Message(conversation=conversation, role="assistant", status="streaming", content="par")
        db.session.add_all([conversation, answer])
        db.session.commit()
        answer_id, user_id = answer.id, user.id
        pid = db.session.scalar(text("SELECT pg_backend_pid()"))
        db.session.commit()
        with psycopg.connect(TEST_PG_URL, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        ended = get_store().finish(answer_id, MessageStatus.COMPLETE, from_statuses=(MessageStatus.STREAMING,),
                                   content="partial")
        assert ended is not None and ended.status == "complete"
        db.session.remove()
        assert db.session.get(Message, answer_id).content == "partial"
        db.session.delete(db.session.get(User, user_id))
        db.session.commit()
        db.engine.dispose()


def test_a_server_process_opens_its_database_pool_ahead(tmp_path, request):
    """``warm_pool`` (wsgi.py, celery_worker.py): DATABASE_POOL_SIZE connections are open and
    idle in the pool before the first request needs one; SQLite has nothing to open."""
    if not TEST_PG_URL:
        pytest.skip("needs PostgreSQL")
    request.getfixturevalue("pg_schema")
    app = create_app(make_config("production", tmp_path, DATABASE_POOL_SIZE=4))
    with app.app_context():
        assert db.engine.pool.checkedin() == 0
        warm_pool(app).join(timeout=30)
        assert db.engine.pool.checkedin() == 4 and db.engine.pool.checkedout() == 0
        db.engine.dispose()
    assert warm_pool(create_app(make_config("embedded", tmp_path))) is None


def test_server_processes_exempt_their_startup_objects_from_full_collections(tmp_path):
    """wsgi.py freezes what exists once the web process is ready (bestchat.gc_freeze): a full
    collection then walks only later objects, not the many created at start."""
    script = "import gc, wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"
    env = {**os.environ, "BESTCHAT_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("BESTCHAT_DATABASE_URL", None)
    env.pop("BESTCHAT_REDIS_URL", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    frozen, tracked = map(int, result.stdout.split()[-2:])
    assert frozen > 50_000 and tracked < frozen / 10
