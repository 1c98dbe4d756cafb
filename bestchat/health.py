"""Liveness and readiness: ``/healthz`` (the process answers) and ``/readyz`` (its backends do)."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import text

from bestchat.extensions import db
from bestchat.redis_client import get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Database and (when configured) Redis are reachable; 503 naming what is down."""
    checks = {"database": _check(lambda: db.session.execute(text("SELECT 1")))}
    client = get_redis()
    if client is not None:
        checks["redis"] = _check(client.ping)
    ready = all(value == "ok" for value in checks.values())
    if not ready:
        db.session.rollback()
    body = {"status": "ok" if ready else "unavailable", "checks": checks,
            "mode": "embedded" if current_app.config["EMBEDDED"] else "redis"}
    return body, 200 if ready else 503


def _check(probe) -> str:
    try:
        probe()
    except Exception as error:  # noqa: BLE001 - any failure means "down"
        return f"down: {type(error).__name__}"
    return "ok"
