"""The ``bestchat`` command line: create-admin, serve's embedded-mode guard, worker, db upgrade
(``plugins list`` is tested with the plugins, in test_plugins.py and test_plugin_settings.py;
``models`` in test_cli_models.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from bestchat import create_app
from bestchat.extensions import db
from bestchat.models import AuditLog, User
from bestchat.testing.pytest_plugin import make_config


def test_create_admin_prints_a_generated_password_that_works(runner, client):
    result = runner.invoke(args=["create-admin", "root@example.com"])
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    user = client.login("root@example.com", password)
    assert user["role"] == "admin"


def test_create_admin_is_audited_without_an_address(runner, app):
    assert runner.invoke(args=["create-admin", "root@example.com"]).exit_code == 0
    with app.app_context():
        rows = db.session.execute(select(AuditLog.action, AuditLog.ip)).all()
    assert [tuple(row) for row in rows] == [("user.registered", None)]


def test_create_admin_if_none_exists_is_idempotent(runner, app):
    first = runner.invoke(args=["create-admin", "root@example.com", "--if-none-exists"])
    second = runner.invoke(args=["create-admin", "again@example.com", "--if-none-exists"])
    assert "Password" in first.output and second.output == ""
    with app.app_context():
        assert [u.email for u in db.session.scalars(select(User))] == ["root@example.com"]


def test_create_admin_with_a_weak_password_fails_and_creates_nothing(runner, app):
    result = runner.invoke(args=["create-admin", "root@example.com", "--password", "123"])
    minimum = app.config["PASSWORD_MIN_LENGTH"]
    assert result.exit_code == 1
    assert result.output == f"Error: password must be at least {minimum} characters\n"
    with app.app_context():
        assert db.session.scalar(select(User)) is None


def test_serve_refuses_several_workers_without_redis(tmp_path):
    embedded = create_app(make_config("embedded", tmp_path))
    result = embedded.test_cli_runner().invoke(args=["serve", "--workers", "2"])
    assert result.exit_code != 0 and "BESTCHAT_REDIS_URL" in result.output


def test_worker_needs_redis(tmp_path):
    embedded = create_app(make_config("embedded", tmp_path))
    result = embedded.test_cli_runner().invoke(args=["worker"])
    assert result.exit_code != 0 and "BESTCHAT_REDIS_URL" in result.output


@pytest.mark.parametrize("settings, args, expected", [
    ({}, [], "100"), ({"WORKER_CONCURRENCY": 7}, [], "7"), ({"WORKER_CONCURRENCY": 7}, ["--concurrency", "3"], "3")])
def test_worker_concurrency_comes_from_the_setting_unless_given(tmp_path, monkeypatch, settings, args, expected):
    """``bestchat worker`` runs Celery with ``-c WORKER_CONCURRENCY`` (its registered slots)."""
    app = create_app(make_config("embedded", tmp_path, REDIS_URL="redis://127.0.0.1:1/0", **settings))
    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    monkeypatch.setattr(os, "chdir", lambda path: None)
    result = app.test_cli_runner().invoke(args=["worker", *args])
    assert result.exit_code == 0, result.output
    argv = started[0]
    assert argv[:3] == ["celery", "-A", "celery_worker"] and argv[argv.index("-c") + 1] == expected
    assert "-E" not in argv  # task events cost CPU per task: opt-in


def test_worker_sends_task_events_only_when_asked(tmp_path, monkeypatch):
    app = create_app(make_config("embedded", tmp_path, REDIS_URL="redis://127.0.0.1:1/0"))
    started = []
    monkeypatch.setattr(os, "execv", lambda path, argv: started.append(argv))
    monkeypatch.setattr(os, "chdir", lambda path: None)
    assert app.test_cli_runner().invoke(args=["worker", "--events"]).exit_code == 0
    assert "-E" in started[0]


def test_console_script_upgrades_a_fresh_database(tmp_path):
    env = {"BESTCHAT_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    if os.environ.get("PYTHONPATH"):  # a checkout run without installing it
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    bestchat = f"{sys.prefix}/bin/bestchat"
    result = subprocess.run([bestchat, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bestchat.db").exists()
    listed = subprocess.run([bestchat, "--help"], env=env, capture_output=True, text=True, timeout=120)
    for command in ("serve", "worker", "create-admin", "rotate-keys", "plugins", "models", "db"):
        assert command in listed.stdout
