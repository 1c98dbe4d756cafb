"""Encryption of stored secrets and ``bestchat rotate-keys``."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import select

from bestchat import crypto
from bestchat.extensions import db
from bestchat.models import AuditLog, ProviderConfig
from bestchat.services import accounts, provider_configs
from tests.fake_providers import installed

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
KEYS = {"user": "sk-good-user-0123456789", "global": "sk-good-global-0123456789"}


@pytest.fixture
def app_config():
    return {"ENCRYPTION_KEYS": [OLD]}


@pytest.fixture
def ctx(app):
    with app.app_context(), installed():
        yield


def test_round_trip_and_clear_error_for_unknown_key(ctx, app):
    token = crypto.encrypt("sk-secret-value")
    assert "sk-secret-value" not in token and crypto.decrypt(token) == "sk-secret-value"
    app.config["ENCRYPTION_KEYS"] = [NEW]
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted") as error:
        crypto.decrypt(token)
    assert token not in str(error.value)
    app.config["ENCRYPTION_KEYS"] = [NEW, OLD]
    assert crypto.decrypt(token) == "sk-secret-value"
    assert crypto.decrypt(crypto.encrypt("x")) == "x"


def test_decrypted_secrets_kept_in_memory_are_bounded(ctx, app, monkeypatch):
    monkeypatch.setattr(crypto, "DECRYPTED_KEPT", 3)
    opened: list[str] = []  # what Fernet itself decrypted (a kept secret is not decrypted again)
    fernet_decrypt = MultiFernet.decrypt
    monkeypatch.setattr(MultiFernet, "decrypt",
                        lambda self, token, *args: opened.append(token.decode()) or fernet_decrypt(self, token, *args))
    tokens = [crypto.encrypt(f"sk-{n}") for n in range(5)]
    assert [crypto.decrypt(token) for token in tokens] == [f"sk-{n}" for n in range(5)]
    assert opened == tokens
    assert [crypto.decrypt(token) for token in tokens[2:]] == ["sk-2", "sk-3", "sk-4"]
    assert opened == tokens  # the three most recently used were kept
    assert crypto.decrypt(tokens[0]) == "sk-0"
    assert opened == [*tokens, tokens[0]]  # the least recently used went first


def test_first_key_encrypts(ctx, app):
    app.config["ENCRYPTION_KEYS"] = [NEW, OLD]
    token = crypto.encrypt("sk-secret-value")
    assert Fernet(NEW).decrypt(token.encode()) == b"sk-secret-value"


@pytest.mark.parametrize("keys, message", [([], "empty"), (["not-a-key"], "#1"), ([OLD, "bad"], "#2")])
def test_misconfigured_keys_are_named(ctx, app, keys, message):
    app.config["ENCRYPTION_KEYS"] = keys
    with pytest.raises(crypto.CryptoError, match=message):
        crypto.encrypt("x")


def _store_keys() -> None:
    alice = accounts.register("alice@example.com", "correct horse battery")
    root = accounts.register("root@example.com", "correct horse battery", role="admin")
    provider_configs.create_config(alice, {"provider": "keyed", "api_key": KEYS["user"]})
    provider_configs.create_config(root, {"provider": "keyed", "api_key": KEYS["global"], "scope": "global"})
    provider_configs.create_config(alice, {"provider": "local"})  # no key: nothing to rotate


def _stored() -> dict:
    """Config id -> the stored (encrypted) key, as in the database now."""
    db.session.expire_all()
    return {c.id: c.api_key_encrypted for c in db.session.scalars(
        select(ProviderConfig).where(ProviderConfig.api_key_encrypted.is_not(None)))}


def test_rotate_keys_reencrypts_everything_under_the_new_first_key(ctx, app, runner):
    _store_keys()
    before = _stored()
    app.config["ENCRYPTION_KEYS"] = [NEW, OLD]
    result = runner.invoke(args=["rotate-keys"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 provider key(s)" in result.output
    after = _stored()
    assert after.keys() == before.keys() and all(after[k] != before[k] for k in after)

    app.config["ENCRYPTION_KEYS"] = [NEW]  # the old key is retired
    assert sorted(crypto.decrypt(token) for token in after.values()) == sorted(KEYS.values())
    app.config["ENCRYPTION_KEYS"] = [OLD]
    for token in after.values():
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(token)

    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "encryption_keys.rotated"))
    assert entry.details == {"count": 2}
    assert all(secret not in result.output for secret in KEYS.values())


def test_rotate_keys_is_all_or_nothing(ctx, app, runner):
    _store_keys()
    app.config["ENCRYPTION_KEYS"] = [NEW]
    provider_configs.create_config(accounts.find_by_email("alice@example.com"),
                                   {"provider": "other", "api_key": "sk-good-new-0123456789"})
    before = _stored()
    result = runner.invoke(args=["rotate-keys"])  # OLD is missing: two keys cannot be read
    assert result.exit_code != 0 and "cannot be decrypted" in result.output
    assert _stored() == before
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "encryption_keys.rotated")) is None
