"""Password hashing (scrypt through werkzeug) and the password policy."""

from __future__ import annotations

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from bestchat.errors import Invalid

# A few passwords no policy should let through, whatever their length.
_COMMON = {
    "password", "password1", "12345678", "123456789", "1234567890", "qwertyuiop", "iloveyou",
    "11111111", "00000000", "abcdefgh", "letmein1", "qwerty123", "passw0rd", "bestchat",
}
# A real hash to compare against when the account does not exist, so timing leaks nothing.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(password_hash: str | None, password: str) -> bool:
    return check_password_hash(password_hash or _DUMMY_HASH, password) and password_hash is not None


def check_policy(password: str) -> None:
    """:class:`Invalid` (``weak_password``) unless the password is long enough and not a known
    weak one."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        raise Invalid("weak_password", f"password must be at least {minimum} characters")
    if password.lower() in _COMMON or len(set(password)) < 3:
        raise Invalid("weak_password", "password is too easy to guess")
    if len(password) > 1024:
        raise Invalid("invalid_field", "password is longer than 1024 characters")
