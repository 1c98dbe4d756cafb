"""Loads settings into the Flask app: defaults, then a settings file, then BESTCHAT_* variables.

Also derives what the rest of the code needs from them (the SQLAlchemy URL, embedded-mode
secrets kept under ``instance/``) and refuses to start a production server on missing or
default secrets.

Booleans are parsed strictly: a setting whose default is ``True`` or ``False`` (in
``config/defaults.py`` or Flask's own), and the optional booleans :data:`OPTIONAL_BOOLEANS`, that
arrives as text (``BESTCHAT_SAFE_MODE=no`` is not JSON, so Flask keeps the string) must be one
of :data:`BOOLEAN_WORDS`; anything else refuses to start, naming the variable.
"""

from __future__ import annotations

import math
import os
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "config"
ENV_PREFIX = "BESTCHAT"
# Flask-SQLAlchemy's bind key of the side engine (:func:`bestchat.database.side_engine`).
SIDE_BIND = "side"

# Values that must never sign a production session.
_PLACEHOLDER_SECRETS = {"", "dev", "secret", "changeme", "change-me", "CHANGE-ME", "development"}
MIN_SECRET_LENGTH = 32
# Least entropy of a production SECRET_KEY, estimated from its characters' frequencies (bits):
# random keys of 32+ characters (hex or URL-safe) estimate well above it, one character
# repeated estimates 0.
MIN_SECRET_BITS = 80


# What a boolean setting may be written as (any case, surrounding spaces ignored).
BOOLEAN_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
                 "on": True, "off": False}
# Booleans whose default is None (decided from other settings) or that have no default (legacy).
OPTIONAL_BOOLEANS = ("JOBS_IN_PROCESS", "REGISTRATION_OPEN")


class ConfigurationError(SystemExit):
    """A setting makes it unsafe or impossible to start; the message is one line."""


def default_instance_path() -> Path:
    return Path(os.environ.get(f"{ENV_PREFIX}_INSTANCE_PATH") or REPO_ROOT / "instance").resolve()


def load_settings(app: Flask, overrides: dict | None = None) -> None:
    """Fill ``app.config`` in order: defaults, BESTCHAT_CONFIG file, environment, overrides."""
    app.config.from_pyfile(str(CONFIG_DIR / "defaults.py"))
    booleans = {name for name, value in app.config.items() if isinstance(value, bool)}
    config_file = os.environ.get(f"{ENV_PREFIX}_CONFIG")
    if config_file:
        app.config.from_pyfile(str(Path(config_file).resolve()))
    app.config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        app.config.update(overrides)
    _parse_booleans(app.config, booleans)
    _derive(app)


def _parse_booleans(config, booleans: set[str]) -> None:
    """Replace each boolean setting by True or False (see :func:`parse_boolean`)."""
    for name in sorted(booleans):
        config[name] = parse_boolean(name, config[name])
    for name in OPTIONAL_BOOLEANS:
        if config.get(name) is not None:
            config[name] = parse_boolean(name, config[name])


def parse_boolean(name: str, value: object) -> bool:
    """``value`` of the boolean setting ``name`` as a bool: a bool, 0 or 1 (JSON from the
    environment), or one of :data:`BOOLEAN_WORDS`; else :class:`ConfigurationError` naming the
    environment variable when it is set, else the setting (a settings file's)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[value.strip().lower()]
    variable = f"{ENV_PREFIX}_{name}"
    source = variable if variable in os.environ else name
    raise ConfigurationError(
        f"refusing to start: {source} must be a boolean ({'/'.join(BOOLEAN_WORDS)}, any case), not {value!r}")


def is_production(app: Flask) -> bool:
    return app.config.get("ENV_NAME") == "production"


def _derive(app: Flask) -> None:
    config = app.config
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)

    url = config.get("DATABASE_URL") or f"sqlite:///{instance / 'bestchat.db'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    config["DATABASE_URL"] = url
    config["SQLALCHEMY_DATABASE_URI"] = url
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if url.startswith("sqlite"):
        options.setdefault("connect_args", {"timeout": config["SQLITE_BUSY_TIMEOUT_MS"] / 1000})
    else:
        # The most recently used connection first: it is the likeliest to need no liveness
        # ping (bestchat.database) and to have psycopg's prepared statements already.
        options.setdefault("pool_use_lifo", True)
        options.setdefault("pool_size", int(config["DATABASE_POOL_SIZE"]))
        options.setdefault("max_overflow", int(config["DATABASE_MAX_OVERFLOW"]))
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    config["SQLALCHEMY_BINDS"] = _side_bind(config, url)
    config["REDIS_URL"] = config.get("REDIS_URL") or None
    config["EMBEDDED"] = config["REDIS_URL"] is None

    if is_production(app):
        _require_production_secrets(config)
    else:
        if not config.get("SECRET_KEY"):
            config["SECRET_KEY"] = _instance_secret(instance / "secret_key", lambda: secrets.token_urlsafe(48))
        if not config.get("ENCRYPTION_KEYS"):
            config["ENCRYPTION_KEYS"] = _instance_secret(
                instance / "encryption_keys", lambda: Fernet.generate_key().decode()
            )
    keys = config["ENCRYPTION_KEYS"]
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    config["ENCRYPTION_KEYS"] = list(keys)

    _derive_registration(config)
    upload = Path(config["UPLOAD_FOLDER"])
    config["UPLOAD_FOLDER"] = str(upload if upload.is_absolute() else instance / upload)
    _check_outbound(config)


REGISTRATION_MODES = ("open", "invite", "closed")


def _derive_registration(config) -> None:
    """``REGISTRATION`` from the legacy boolean too: ``REGISTRATION_OPEN = False`` (from a
    settings file or ``BESTCHAT_REGISTRATION_OPEN=false``) means ``"closed"``. Refuses to start
    on an unknown mode."""
    if config.get("REGISTRATION_OPEN") is False:
        config["REGISTRATION"] = "closed"
    mode = str(config.get("REGISTRATION") or "open").strip().lower()
    if mode not in REGISTRATION_MODES:
        raise ConfigurationError(
            f"refusing to start: REGISTRATION must be one of {', '.join(REGISTRATION_MODES)}, not {mode!r}")
    config["REGISTRATION"] = mode


def _side_bind(config: dict[str, Any], url: str) -> dict[str, Any]:
    """The side engine's bind (:func:`bestchat.database.side_engine`): the same database with
    a pool of its own; none for an in-memory SQLite database, which another engine would not
    see."""
    binds = dict(config.get("SQLALCHEMY_BINDS") or {})
    if url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url:
        return binds
    side: dict[str, Any] = {"url": url}
    if not url.startswith("sqlite"):
        side["pool_size"] = int(config["DATABASE_SIDE_POOL_SIZE"])
        side["max_overflow"] = int(config["DATABASE_SIDE_MAX_OVERFLOW"])
    binds.setdefault(SIDE_BIND, side)
    return binds


def _require_production_secrets(config) -> None:
    secret = config.get("SECRET_KEY") or ""
    if secret in _PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            "refusing to start: BESTCHAT_SECRET_KEY is missing or a placeholder "
            f"(set {MIN_SECRET_LENGTH}+ random characters)"
        )
    if secret_bits(secret) < MIN_SECRET_BITS:
        raise ConfigurationError(
            "refusing to start: BESTCHAT_SECRET_KEY is not random enough (too few distinct "
            "characters; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if not config.get("ENCRYPTION_KEYS"):
        raise ConfigurationError(
            "refusing to start: BESTCHAT_ENCRYPTION_KEYS is missing (comma-separated Fernet keys)"
        )


def secret_bits(secret: str) -> float:
    """An estimate of a secret's entropy: its length times the Shannon entropy of its
    character frequencies (0 for one repeated character)."""
    counts = Counter(secret)
    per_char = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values()) if secret else 0.0
    return len(secret) * per_char


def _check_outbound(config) -> None:
    """Refuse to start on an OUTBOUND_ALLOW/DENY/ADMIN_ALLOW entry that is neither a CIDR, an
    address nor a host name (rather than failing each outbound check later)."""
    from bestchat.security.outbound import rules_from_config  # noqa: PLC0415

    try:
        rules_from_config(config)
    except ValueError as error:
        raise ConfigurationError(f"refusing to start: OUTBOUND_* setting: {error}") from None


def _instance_secret(path: Path, make) -> str:
    """Read a secret kept under instance/, creating it (mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
