"""The ``bestchat`` command line: create-admin, serve's embedded-mode guard, db upgrade."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import select

from bestchat import create_app
from bestchat.extensions import db
from bestchat.models import User
from bestchat.testing.pytest_plugin import make_config


def test_create_admin_prints_a_generated_password_that_works(runner, client):
    result = runner.invoke(args=["create-admin", "root@example.com"])
    assert result.exit_code == 0, result.output
    password = result.output.split("Password (shown once): ")[1].strip()
    user = client.login("root@example.com", password)
    assert user["role"] == "admin"


def test_create_admin_if_none_exists_is_idempotent(runner, app):
    first = runner.invoke(args=["create-admin", "root@example.com", "--if-none-exists"])
    second = runner.invoke(args=["create-admin", "again@example.com", "--if-none-exists"])
    assert "Password" in first.output and second.output == ""
    with app.app_context():
        assert [u.email for u in db.session.scalars(select(User))] == ["root@example.com"]


def test_create_admin_with_a_weak_password_fails(runner):
    result = runner.invoke(args=["create-admin", "root@example.com", "--password", "123"])
    assert result.exit_code != 0 and "at least" in result.output


def test_serve_refuses_several_workers_without_redis(tmp_path):
    embedded = create_app(make_config("embedded", tmp_path))
    result = embedded.test_cli_runner().invoke(args=["serve", "--workers", "2"])
    assert result.exit_code != 0 and "BESTCHAT_REDIS_URL" in result.output


def test_worker_needs_redis(tmp_path):
    embedded = create_app(make_config("embedded", tmp_path))
    result = embedded.test_cli_runner().invoke(args=["worker"])
    assert result.exit_code != 0 and "BESTCHAT_REDIS_URL" in result.output


def test_console_script_upgrades_a_fresh_database(tmp_path):
    env = {"BESTCHAT_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    bestchat = f"{sys.prefix}/bin/bestchat"
    result = subprocess.run([bestchat, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "bestchat.db").exists()
    listed = subprocess.run([bestchat, "--help"], env=env, capture_output=True, text=True, timeout=120)
    for command in ("serve", "worker", "create-admin", "db"):
        assert command in listed.stdout
