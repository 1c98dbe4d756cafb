"""Encryption of stored secrets (provider API keys) with the ``ENCRYPTION_KEYS`` Fernet keys.

The first key encrypts; every key decrypts, so a new key is rolled out by putting it first,
running ``bestchat rotate-keys`` (which re-encrypts every stored secret under it), and only
then removing the old key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

_EXTENSION = "bestchat_fernet"


class CryptoError(Exception):
    """Encryption is misconfigured or a stored secret cannot be read. Never contains a secret."""


class DecryptionError(CryptoError):
    """A stored secret was encrypted with a key that is no longer in ``ENCRYPTION_KEYS``."""


def _fernet(app: Flask | None = None) -> MultiFernet:
    """The app's MultiFernet, rebuilt only when ``ENCRYPTION_KEYS`` changes."""
    app = app or current_app
    keys = tuple(app.config["ENCRYPTION_KEYS"])
    cached = app.extensions.get(_EXTENSION)
    if cached is not None and cached[0] == keys:
        return cached[1]
    if not keys:
        raise CryptoError("ENCRYPTION_KEYS is empty: set at least one Fernet key")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise CryptoError(
                f"ENCRYPTION_KEYS entry #{position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    multi = MultiFernet(fernets)
    app.extensions[_EXTENSION] = (keys, multi)
    return multi


def encrypt(plaintext: str) -> str:
    """``plaintext`` encrypted under the first configured key, as text for a database column."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext of ``token``; :class:`DecryptionError` when no configured key opens it."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any key in ENCRYPTION_KEYS "
            "(was a key removed before running 'bestchat rotate-keys'?)"
        ) from None


def reencrypt(token: str) -> str:
    """``token`` re-encrypted under the current first key (decrypted with any configured key)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any key in ENCRYPTION_KEYS; "
            "add the key it was encrypted with and run 'bestchat rotate-keys' again"
        ) from None
