"""Liveness and readiness: ``/healthz`` (the process answers) and ``/readyz`` (its backends do,
plus the generation capacity as this process sees it)."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import text

from bestchat.api.openapi import documented, obj, string
from bestchat.extensions import db
from bestchat.redis_client import get_redis
from bestchat.services.admission import get_admission

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented(responses={200: obj({"status": string(enum=["ok"])}, ("status",))})
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
@documented(responses={200: obj({"status": string(), "checks": {"type": "object"}, "mode": string()},
                                ("status", "checks")),
                       503: obj({"status": string(), "checks": {"type": "object"}}, ("status", "checks"))})
def readyz():
    """Database and (when configured) Redis are reachable; 503 naming what is down.

    ``generation`` reports ``{capacity, in_flight, queue_limit}``: the slots of the live
    workers (or of the in-process pool; 0 = no worker registered yet), the answers running or
    waiting, and how many may wait before new ones are refused. ``tool_sandbox`` reports
    ``{available, method, detail, risks}``: whether tools run isolated and which risk levels
    can run. Both are informational only."""
    checks = backend_checks()
    ready = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": checks,
            "mode": "embedded" if current_app.config["EMBEDDED"] else "redis"}
    if ready:
        try:
            body["generation"] = get_admission().status()
        except Exception:  # noqa: BLE001 - informational; readiness is the checks above
            body["generation"] = None
    body["tool_sandbox"] = _tool_sandbox()
    return body, 200 if ready else 503


def backend_checks() -> dict[str, str]:
    """``{"database": "ok" | "down: <error>", "redis": ...}`` (Redis only when configured);
    ``/readyz`` and the console's home report these."""
    checks = {"database": _check(lambda: db.session.execute(text("SELECT 1")))}
    client = get_redis()
    if client is not None:
        checks["redis"] = _check(client.ping)
    if checks["database"] != "ok":
        db.session.rollback()
    return checks


def _tool_sandbox() -> dict | None:
    from bestchat.tools.sandbox import isolation, runnable_risks

    try:
        status = isolation(current_app.config)
        return {"available": status.available, "method": status.method, "detail": status.detail,
                "risks": list(runnable_risks(current_app.config))}
    except Exception:  # noqa: BLE001 - informational; never a reason to be unready
        return None


def _check(probe) -> str:
    try:
        probe()
    except Exception as error:  # noqa: BLE001 - any failure means "down"
        return f"down: {type(error).__name__}"
    return "ok"
