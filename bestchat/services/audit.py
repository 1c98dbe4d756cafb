"""Recording sensitive actions in the audit log (the caller's transaction commits the row).

A row made while a request is served carries the client's address, from the facts the adapter
hands over (:mod:`bestchat.request_facts`); rows made outside a request (the command line, a
worker) carry none.
"""

from __future__ import annotations

import uuid
from typing import Any

from bestchat import request_facts
from bestchat.extensions import db
from bestchat.models import AuditLog


def record(action: str, actor_id: uuid.UUID | None = None, target_type: str | None = None,
           target_id: Any = None, **details: Any) -> AuditLog:
    """Add an audit row for ``action`` (e.g. ``login.success``); never pass secrets in details."""
    entry = AuditLog(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        ip=request_facts.current().ip,
        details=details,
    )
    db.session.add(entry)
    return entry
