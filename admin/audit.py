"""The console's audit log: every recorded action, newest first, with the actor's and the
target account's names and emails, filters (action, actor email, target type, date range),
pagination, and a CSV export of the filtered rows.

The accounts named on a page are resolved in one query (:func:`people`); an account deleted
since shows as "deleted account" with its id. Reading the log writes nothing; an export is
itself recorded (``audit.exported``). Exported cells that a spreadsheet would run as a formula
are prefixed with ``'`` (:func:`csv_cell`).
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Response, g, request, stream_with_context
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_login import current_user
from sqlalchemy import select

from bestchat.admin.base import SecureModelView
from bestchat.extensions import db
from bestchat.models import AuditLog, User
from bestchat.models.base import isoformat
from bestchat.services import audit

# Rows read (and accounts resolved) per batch while a CSV export streams.
EXPORT_BATCH = 500
# First characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("time", "action", "actor_id", "actor_email", "actor_name", "target_type", "target_id",
               "target_email", "target_name", "ip", "details")


def people(ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, User]:
    """The existing accounts among ``ids``, by id, in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(wanted)))}


def target_user_id(entry: AuditLog) -> uuid.UUID | None:
    """The account an entry is about, when its target is one."""
    if entry.target_type != "user" or not entry.target_id:
        return None
    try:
        return uuid.UUID(entry.target_id)
    except ValueError:
        return None


def ids_of(entries: Iterable[AuditLog]) -> set[uuid.UUID | None]:
    found: set[uuid.UUID | None] = set()
    for entry in entries:
        found.update((entry.actor_id, target_user_id(entry)))
    return found


def describe(user_id: uuid.UUID | None, known: dict[uuid.UUID, User]) -> str:
    """``Name <email>`` of an account, "deleted account <id>" when it is gone, "-" for none."""
    if user_id is None:
        return "-"
    user = known.get(user_id)
    if user is None:
        return f"deleted account {user_id}"
    return f"{user.display_name} <{user.email}>" if user.display_name else user.email


def csv_cell(value: Any) -> str:
    """A cell's text, prefixed with ``'`` when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class ActorEmailFilter(BaseSQLAFilter):
    """Entries made by accounts whose email contains the given text."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        pattern = f"%{str(value).strip().lower()}%"
        return query.filter(AuditLog.actor_id.in_(select(User.id).where(User.email.like(pattern))))

    def operation(self) -> str:
        return "contains"


def _person_formatter(attribute: str):
    def format_person(view: Any, context: Any, entry: AuditLog, name: str) -> str:
        user_id = entry.actor_id if attribute == "actor" else target_user_id(entry)
        if attribute == "target" and user_id is None:
            return f"{entry.target_type or '-'} {entry.target_id or ''}".strip()
        return describe(user_id, g.get("audit_people", {}))
    return format_person


def _details(view: Any, context: Any, entry: AuditLog, name: str) -> str:
    return json.dumps(entry.details, sort_keys=True) if entry.details else ""


class _Lines:
    """A file-like object whose ``write`` hands back the line, for a streamed ``csv.writer``."""

    def write(self, line: str) -> str:
        return line


class AuditLogView(SecureModelView):
    """The audit trail, read-only, newest first, with people named and a CSV export."""

    can_create = can_edit = can_delete = False
    list_template = "bestchat_admin/audit_list.html"
    column_list = ("created_at", "action", "actor_id", "target_id", "ip", "details")
    column_labels = {"created_at": "Time", "actor_id": "Actor", "target_id": "Target", "ip": "Address"}
    column_sortable_list = ("created_at", "action")
    column_default_sort = ("created_at", True)
    column_filters = ("action", ActorEmailFilter(AuditLog.actor_id, "Actor email"), "target_type", "created_at")
    column_formatters = {"actor_id": _person_formatter("actor"), "target_id": _person_formatter("target"),
                         "details": _details}
    page_size = 50
    named_filter_urls = True

    def get_list(self, *args: Any, **kwargs: Any) -> Any:
        """The page's rows, with every account they name loaded in one query for the formatters."""
        count, rows = super().get_list(*args, **kwargs)
        if kwargs.get("execute", True):
            g.audit_people = people(ids_of(rows))
        return count, rows

    def _filtered_query(self) -> Any:
        """The query of the list's current filters, search and sort (from the request's args)."""
        view_args = self._get_list_extra_args()
        sort = self._get_column_by_idx(view_args.sort)
        _count, query = self.get_list(None, sort[0] if sort else None, view_args.sort_desc, view_args.search,
                                      view_args.filters, execute=False)
        return query

    @expose("/export.csv")
    def export_csv(self) -> Response:
        """The filtered rows as CSV, streamed in batches; the export itself is audit-logged."""
        # The filters chosen are the query string's: recorded with the export.
        audit.record("audit.exported", current_user.id, "audit_log", None, query=request.query_string.decode()[:500])
        db.session.commit()

        def rows() -> Iterator[str]:
            # The query is built here, while the response streams, so that it runs on this
            # context's session (the view's session is closed once the view returns).
            query = self._filtered_query()
            writer = csv.writer(_Lines())
            yield writer.writerow(CSV_COLUMNS)
            batch: list[AuditLog] = []
            for entry in query.yield_per(EXPORT_BATCH):
                batch.append(entry)
                if len(batch) == EXPORT_BATCH:
                    yield from _csv_lines(writer, batch)
                    batch = []
            yield from _csv_lines(writer, batch)

        return Response(stream_with_context(rows()), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="bestchat-audit.csv"',
                                 "Cache-Control": "no-store"})


def _csv_lines(writer: Any, batch: list[AuditLog]) -> Iterator[str]:
    known = people(ids_of(batch))
    for entry in batch:
        actor = known.get(entry.actor_id) if entry.actor_id else None
        target_id = target_user_id(entry)
        target = known.get(target_id) if target_id else None
        yield writer.writerow([csv_cell(value) for value in (
            isoformat(entry.created_at), entry.action, entry.actor_id,
            actor.email if actor else ("deleted account" if entry.actor_id else ""),
            actor.display_name if actor else "",
            entry.target_type, entry.target_id,
            target.email if target else ("deleted account" if target_id else ""),
            target.display_name if target else "",
            entry.ip, json.dumps(entry.details, sort_keys=True) if entry.details else "",
        )])
