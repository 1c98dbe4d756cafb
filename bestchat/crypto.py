"""Encryption of stored secrets (provider API keys) with the ``ENCRYPTION_KEYS`` Fernet keys.

The first key encrypts; every key decrypts, so a new key is rolled out by putting it first,
running ``bestchat rotate-keys`` (which re-encrypts every stored secret under it), and only
then removing the old key.

Decrypted secrets are kept in a small per-keyring memory cache (:data:`DECRYPTED_KEPT`
entries, the least recently used dropped first; emptied when ``ENCRYPTION_KEYS`` changes):
every generation decrypts its provider's key on the path of its first token, and a Fernet
decryption (HMAC check, AES, the library's layers) is CPU spent there on every answer. The
cache holds only what a worker holds anyway while it calls a provider, and nothing at rest.
"""

from __future__ import annotations

from collections import OrderedDict

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app

_EXTENSION = "bestchat_fernet"
DECRYPTED_KEPT = 256


class CryptoError(Exception):
    """Encryption is misconfigured or a stored secret cannot be read. Never contains a secret."""


class DecryptionError(CryptoError):
    """A stored secret was encrypted with a key that is no longer in ``ENCRYPTION_KEYS``."""


def _fernet(app: Flask | None = None) -> MultiFernet:
    """The app's MultiFernet, rebuilt only when ``ENCRYPTION_KEYS`` changes."""
    return _keyring(app)[1]


def _keyring(app: Flask | None = None) -> tuple[tuple[str, ...], MultiFernet, OrderedDict[str, str]]:
    """The app's keys, their MultiFernet and its cache of decrypted secrets (all rebuilt when
    ``ENCRYPTION_KEYS`` changes)."""
    app = app or current_app
    keys = tuple(app.config["ENCRYPTION_KEYS"])
    cached = app.extensions.get(_EXTENSION)
    if cached is not None and cached[0] == keys:
        return cached
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
    keyring = (keys, MultiFernet(fernets), OrderedDict())
    app.extensions[_EXTENSION] = keyring
    return keyring


def encrypt(plaintext: str) -> str:
    """``plaintext`` encrypted under the first configured key, as text for a database column."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext of ``token``; :class:`DecryptionError` when no configured key opens it."""
    _keys, fernet, decrypted = _keyring()
    plaintext = decrypted.get(token)
    if plaintext is not None:
        decrypted.move_to_end(token)
        return plaintext
    try:
        plaintext = fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any key in ENCRYPTION_KEYS "
            "(was a key removed before running 'bestchat rotate-keys'?)"
        ) from None
    decrypted[token] = plaintext
    if len(decrypted) > DECRYPTED_KEPT:
        decrypted.popitem(last=False)
    return plaintext


def reencrypt(token: str) -> str:
    """``token`` re-encrypted under the current first key (decrypted with any configured key)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any key in ENCRYPTION_KEYS; "
            "add the key it was encrypted with and run 'bestchat rotate-keys' again"
        ) from None
