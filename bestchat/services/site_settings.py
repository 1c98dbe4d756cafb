"""Server settings an admin changes at runtime: stored in the database, applied in every process.

A ``SiteSetting`` row (``bestchat.models.site``) overrides the app config key of the same name
(the file/environment value). Only the keys of :data:`EDITABLE` may be stored, each checked by
its validator; none of them is a secret.

:func:`update` and :func:`reset` change the rows (all or nothing), write the audit log, apply
the result in this process at once and, with Redis, ``INCR`` :data:`VERSION_KEY`. Every process
applies the rows when it starts (:func:`init_site_settings`, from ``create_app``) and then
calls :func:`refresh` often (a web ``before_request``, every WebSocket frame received, the
start of every generation job): it compares a monotonic clock at most every
``SITE_SETTINGS_REFRESH_SECONDS``, and only then reads the version from Redis (one GET); on a
new version it re-reads the rows and applies them. Embedded mode is one process: applying
locally is enough.

Applying writes the effective values into ``app.config`` (where every reader looks) and
re-reads the few objects built from them at start (the admission's per-user limits, the
context settings cache, the plugin registry for ``BLOCKED_PLUGINS``). A key whose row is gone
gets the value the app started with back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from bestchat import plugins
from bestchat.database import read_beside
from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.models import SiteSetting
from bestchat.redis_client import get_redis
from bestchat.services import audit

log = logging.getLogger(__name__)

VERSION_KEY = "bestchat:site_settings:version"
STATE_KEY = "bestchat_site_settings"
REGISTRATION_CHOICES = ("open", "invite", "closed")
UPLOAD_MAX_BYTES_LIMIT = 1024 * 1024 * 1024  # 1 GiB: the most an admin may allow per file
UPLOAD_MIN_BYTES = 1024
MAX_GENERATIONS_LIMIT = 1000
MAX_RATE_COUNT = 1_000_000
MAX_RATE_SECONDS = 7 * 24 * 3600


# ---- validators: each returns the value to store, or raises ValueError with the reason ----

def _registration(value: Any) -> str:
    if value not in REGISTRATION_CHOICES:
        raise ValueError(f"must be one of {', '.join(REGISTRATION_CHOICES)}")
    return value


def _default_model(value: Any) -> str:
    if not isinstance(value, str) or value not in server_models():
        raise ValueError("must be a model the server offers (a global connection's or a built-in one)")
    return value


def _strategies(value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("must be a list of strategy names")
    installed = plugins.get_context_strategies()
    unknown = [name for name in names if name not in installed]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r} (installed: {', '.join(sorted(installed)) or 'none'})")
    return list(dict.fromkeys(names))


def _bounded_int(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number
    return check


def _rate(value: Any) -> str:
    text = str(value).strip() if value is not None else ""
    count, slash, seconds = text.partition("/")
    if not (slash and count.isdigit() and seconds.isdigit()):
        raise ValueError('must be "count/seconds", e.g. "30/60"')
    if not (1 <= int(count) <= MAX_RATE_COUNT and 1 <= int(seconds) <= MAX_RATE_SECONDS):
        raise ValueError(f"count must be 1-{MAX_RATE_COUNT} and seconds 1-{MAX_RATE_SECONDS}")
    return f"{int(count)}/{int(seconds)}"


def _plugin_names(value: Any) -> list[str]:
    names = [part for part in value.split(",")] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("must be a list of plugin names")
    names = [name.strip() for name in names if name.strip()]
    # Names blocked already stay valid (a plugin uninstalled since), so they can be unblocked.
    known = {record["name"] for record in plugins.get_plugins()} | set(current_app.config.get("BLOCKED_PLUGINS") or [])
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown plugin {unknown[0]!r}")
    return sorted(set(names))


@dataclass(frozen=True)
class Editable:
    label: str
    check: Callable[[Any], Any]
    fallback: Any = None  # the value when the app config lacks the key


EDITABLE: dict[str, Editable] = {
    "REGISTRATION": Editable("Registration (open, invite only, closed)", _registration, "open"),
    "DEFAULT_MODEL": Editable("Default model", _default_model),
    "CONTEXT_STRATEGIES": Editable("Default context chain", _strategies),
    "UPLOAD_MAX_BYTES": Editable("Largest upload (bytes)", _bounded_int(UPLOAD_MIN_BYTES, UPLOAD_MAX_BYTES_LIMIT)),
    "RATELIMIT_SEND_PER_USER": Editable("Messages per user (count/seconds)", _rate),
    "RATELIMIT_LOGIN_PER_IP": Editable("Sign-in attempts per address (count/seconds)", _rate),
    "RATELIMIT_REGISTER_PER_IP": Editable("Sign-ups per address (count/seconds)", _rate),
    "USER_MAX_ACTIVE_GENERATIONS": Editable("Answers one user may run at once (0 = no limit)",
                                            _bounded_int(0, MAX_GENERATIONS_LIMIT)),
    "BLOCKED_PLUGINS": Editable("Plugins blocked by an admin", _plugin_names, []),
}


def server_models() -> list[str]:
    """Model ids the server itself offers: its enabled global connections' and the built-in
    (keyless) providers' (:func:`bestchat.providers.registry.operator_models`)."""
    from bestchat.providers.registry import operator_models  # noqa: PLC0415 - avoids an import cycle

    return [model["id"] for model in operator_models()]


# ---- the per-app state ------------------------------------------------------------------

@dataclass
class _State:
    originals: dict[str, Any]  # the file/environment values, restored on reset
    interval: float
    stored: dict[str, Any] = field(default_factory=dict)  # the rows applied last
    version: Any = None  # the Redis version applied last
    next_check: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def init_site_settings(app: Flask) -> None:
    """Remember the app's own values, apply the stored rows (after plugins load) and check for
    changes on each request. A database without the table yet (before ``db upgrade``) is
    skipped: there is nothing stored."""
    state = app.extensions[STATE_KEY] = _State(
        originals={key: app.config.get(key, spec.fallback) for key, spec in EDITABLE.items()},
        interval=float(app.config.get("SITE_SETTINGS_REFRESH_SECONDS", 1.0)))
    with app.app_context():
        client = get_redis(app)
        try:
            state.version = client.get(VERSION_KEY) if client is not None else None
        except Exception:  # noqa: BLE001 - Redis down at start: the next refresh tries again
            log.warning("could not read the site settings version", exc_info=True)
        try:
            rows = _read_rows_at_start()
        except SQLAlchemyError:
            log.info("site settings not read (no site_settings table yet)")
            rows = {}
        _apply(app, rows)
        state.next_check = time.monotonic() + state.interval

    app.before_request(lambda: refresh(app))


def refresh(app: Flask | None = None) -> None:
    """Apply the stored settings if another process changed them. Cheap: a clock compare,
    and at most one Redis GET per ``SITE_SETTINGS_REFRESH_SECONDS``."""
    app = app or current_app._get_current_object()
    state: _State | None = app.extensions.get(STATE_KEY)
    if state is None:
        return
    now = time.monotonic()
    if now < state.next_check:
        return
    state.next_check = now + state.interval
    client = get_redis(app)
    if client is None:
        return
    try:
        version = client.get(VERSION_KEY)
        if version == state.version:
            return
        rows = _read_rows_apart(app)
    except Exception:  # noqa: BLE001 - keep serving with the settings applied last
        log.warning("could not refresh the site settings", exc_info=True)
        return
    state.version = version
    _apply(app, rows)


def _read_rows() -> dict[str, Any]:
    rows = db.session.execute(select(SiteSetting.key, SiteSetting.value)).all()
    return {key: value for key, value in rows if key in EDITABLE}


def _read_rows_at_start() -> dict[str, Any]:
    """The rows, on a connection closed afterwards rather than kept in the pool (a server
    process opens its pool ahead with ``warm_pool``, from an empty pool)."""
    try:
        with db.engine.connect() as connection:
            rows = connection.execute(select(SiteSetting.key, SiteSetting.value)).all()
    finally:
        db.engine.dispose()  # nothing else is open yet: the pool starts empty again
    return {key: value for key, value in rows if key in EDITABLE}


def _read_rows_apart(app: Flask) -> dict[str, Any]:
    """The rows, read on a connection of its own (the caller may be inside a transaction)."""
    with app.app_context():
        rows = read_beside(select(SiteSetting.key, SiteSetting.value))
    return {key: value for key, value in rows if key in EDITABLE}


def _apply(app: Flask, rows: dict[str, Any]) -> None:
    """Make ``rows`` (over the originals) the app's effective settings."""
    state: _State = app.extensions[STATE_KEY]
    with state.lock:
        state.stored = dict(rows)
        for key in EDITABLE:
            app.config[key] = rows[key] if key in rows else state.originals[key]
        _reread(app)


def _reread(app: Flask) -> None:
    """Rebuild what was built from the settings at start."""
    from bestchat.context.assemble import SETTINGS_KEY  # noqa: PLC0415
    from bestchat.security.ratelimit import parse_rule  # noqa: PLC0415

    admission = app.extensions.get("bestchat_admission")
    if admission is not None:
        rule = app.config["RATELIMIT_SEND_PER_USER"]
        admission.user_limit = int(app.config["USER_MAX_ACTIVE_GENERATIONS"] or 0)
        admission.send_rate = parse_rule(rule) if rule else None
    app.extensions.pop(SETTINGS_KEY, None)
    with app.app_context():
        plugins.load_plugins(app)  # rebuilds the registry when BLOCKED_PLUGINS changed


# ---- reading and changing ---------------------------------------------------------------

def effective(app: Flask | None = None) -> list[dict[str, Any]]:
    """Each editable key: ``{key, label, value, source, original}``; ``source`` is ``site``
    (set in the console) or ``config`` (defaults, settings file or environment)."""
    app = app or current_app._get_current_object()
    state: _State = app.extensions[STATE_KEY]
    return [{"key": key, "label": spec.label, "value": app.config.get(key, spec.fallback),
             "source": "site" if key in state.stored else "config", "original": state.originals[key]}
            for key, spec in EDITABLE.items()]


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    """The values to store; :class:`Invalid` naming the first bad key (nothing is changed)."""
    checked: dict[str, Any] = {}
    for key, value in changes.items():
        spec = EDITABLE.get(key)
        if spec is None:
            raise Invalid("unknown_setting", f"{key!r} cannot be changed here", details={"key": key})
        try:
            checked[key] = spec.check(value)
        except ValueError as error:
            raise Invalid("invalid_setting", f"{spec.label}: {error}", details={"key": key}) from None
    return checked


def changed(values: dict[str, Any]) -> dict[str, Any]:
    """Of ``values`` (a whole form), the keys whose checked value differs from the effective
    one; :class:`Invalid` for the first bad value."""
    checked = validate(values)
    return {key: value for key, value in checked.items() if current_app.config.get(key) != value}


def update(actor: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Store ``changes`` (key -> value), all or nothing; audited and applied at once. Returns
    the stored values."""
    checked = validate(changes)
    if not checked:
        return {}
    existing = {row.key: row for row in db.session.scalars(select(SiteSetting).where(SiteSetting.key.in_(checked)))}
    for key, value in checked.items():
        row = existing.get(key) or SiteSetting(key=key)
        row.value, row.updated_by = value, actor.id
        db.session.add(row)
    audit.record("site_settings.updated", actor.id, "site_settings", None, keys=sorted(checked), values=checked)
    db.session.commit()
    _changed()
    return checked


def reset(actor: Any, keys: list[str]) -> None:
    """Delete the rows of ``keys``: those settings take their file/environment values again."""
    unknown = [key for key in keys if key not in EDITABLE]
    if unknown:
        raise Invalid("unknown_setting", f"{unknown[0]!r} cannot be changed here", details={"key": unknown[0]})
    if not keys:
        return
    db.session.execute(delete(SiteSetting).where(SiteSetting.key.in_(keys)))
    audit.record("site_settings.reset", actor.id, "site_settings", None, keys=sorted(keys))
    db.session.commit()
    _changed()


def set_plugin_blocked(actor: Any, name: str, blocked: bool) -> list[str]:
    """Block or unblock the plugin ``name`` (the ``BLOCKED_PLUGINS`` setting), audited as
    ``plugin.blocked`` / ``plugin.unblocked``; returns the names blocked now."""
    current = list(current_app.config.get("BLOCKED_PLUGINS") or [])
    names = sorted(set(current) | {name}) if blocked else [n for n in current if n != name]
    checked = validate({"BLOCKED_PLUGINS": names})["BLOCKED_PLUGINS"]
    row = db.session.scalar(select(SiteSetting).where(SiteSetting.key == "BLOCKED_PLUGINS")) \
        or SiteSetting(key="BLOCKED_PLUGINS")
    row.value, row.updated_by = checked, actor.id
    db.session.add(row)
    audit.record("plugin.blocked" if blocked else "plugin.unblocked", actor.id, "plugin", name)
    db.session.commit()
    _changed()
    return checked


def _changed() -> None:
    """Apply the rows here and tell the other processes (the version in Redis)."""
    app = current_app._get_current_object()
    _apply(app, _read_rows())
    db.session.commit()
    client = get_redis(app)
    if client is not None:
        state: _State = app.extensions[STATE_KEY]
        try:
            # Our own increment needs no re-read here; another process's later one does.
            state.version = str(client.incr(VERSION_KEY))
        except Exception:  # noqa: BLE001 - stored and applied here; others see it on their next change
            log.warning("could not announce the site settings change", exc_info=True)
