"""The app factory, settings precedence, embedded secrets and the production guard."""

from __future__ import annotations

import pytest

from bestchat import create_app
from bestchat.settings import ConfigurationError
from bestchat.testing.pytest_plugin import make_config


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


@pytest.mark.parametrize("secret", [None, "", "changeme", "short-secret"])
def test_production_refuses_missing_or_default_secret(tmp_path, secret):
    with pytest.raises(ConfigurationError) as info:
        create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY=secret,
                               ENCRYPTION_KEYS="x"))
    assert "SECRET_KEY" in str(info.value) and "\n" not in str(info.value)


def test_production_refuses_missing_encryption_keys(tmp_path):
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEYS"):
        create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY="s" * 40,
                               ENCRYPTION_KEYS=None))


def test_production_starts_with_real_secrets(tmp_path):
    from cryptography.fernet import Fernet

    app = create_app(make_config("embedded", tmp_path, ENV_NAME="production", SECRET_KEY="s" * 40,
                                 ENCRYPTION_KEYS=Fernet.generate_key().decode()))
    assert app.config["SECRET_KEY"] == "s" * 40
    assert not (tmp_path / "instance" / "secret_key").exists()
