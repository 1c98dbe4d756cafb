"""The console's audit log: admins only, newest first, paginated, actors and target accounts
shown by name and email (resolved in one query per page; a deleted account says so), filters,
and a CSV export of the filtered rows that a spreadsheet cannot run as formulas."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from bestchat.extensions import db
from bestchat.models import AuditLog, User
from bestchat.models.base import utcnow
from bestchat.services import accounts, audit
from bestchat.testing.client import Client
from tests.admin_helpers import ADMIN_EMAIL, PASSWORD, form_post, sign_up, user_id


def export_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.mark.parametrize("path", ["/admin/audit_log/", "/admin/audit_log/export.csv"])
def test_admins_only(app, admin, path):
    anonymous = Client(app).http.get(path)
    assert anonymous.status_code == 302 and anonymous.headers["Location"] == f"/login?next={path}"
    assert sign_up(app, "bob@example.com").http.get(path).status_code == 403
    assert admin.http.get(path).status_code == 200


def test_rows_name_actor_and_target_and_a_deleted_account(app, admin):
    sign_up(app, "bob@example.com", display_name="Bob Builder")
    bob_id = user_id(app, "bob@example.com")
    form_post(admin, f"/admin/users/manage/role/?id={bob_id}", {"role": "admin"})
    page = admin.http.get("/admin/audit_log/?flt0_action_equals=user.role_changed").get_data(as_text=True)
    assert "Root &lt;root@example.com&gt;" in page and "Bob Builder &lt;bob@example.com&gt;" in page
    with app.app_context():
        accounts.delete_user(db.session.get(User, user_id(app, ADMIN_EMAIL)), db.session.get(User, bob_id))
    page = admin.http.get("/admin/audit_log/?flt0_action_equals=user.role_changed").get_data(as_text=True)
    assert f"deleted account {bob_id}" in page and "bob@example.com" not in page


def test_reading_writes_nothing_and_the_people_of_a_page_cost_one_query(app, admin):
    for n in range(30):
        sign_up(app, f"user{n}@example.com")

    def user_selects() -> int:
        statements = []

        def seen(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("SELECT") and "FROM users" in statement:
                statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            assert admin.http.get("/admin/audit_log/").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return len(statements)

    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(AuditLog))
    # (one for the signed-in admin, one for the page's people)
    assert user_selects() <= 2
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditLog)) == before


def test_filters_and_newest_first(app, admin):
    sign_up(app, "bob@example.com")
    with app.app_context():
        old = audit.record("conversation.viewed", None, "conversation", "c-1")
        old.created_at = utcnow() - timedelta(days=10)
        db.session.commit()
    by_actor = admin.http.get("/admin/audit_log/?flt0_actor_email_contains=bob@").get_data(as_text=True)
    assert "login.success" in by_actor and "user.registered" in by_actor and "conversation.viewed" not in by_actor
    by_type = admin.http.get("/admin/audit_log/?flt0_target_type_equals=conversation").get_data(as_text=True)
    assert "conversation.viewed" in by_type and "login.success" not in by_type
    day = (utcnow() - timedelta(days=10)).strftime("%Y-%m-%d")
    window = f"{day} 00:00:00 to {day} 23:59:59"
    dated = admin.http.get("/admin/audit_log/", query_string={"flt0_time_between": window}).get_data(as_text=True)
    assert "conversation.viewed" in dated and "login.success" not in dated
    listing = admin.http.get("/admin/audit_log/").get_data(as_text=True)
    assert listing.index("login.success") < listing.index("conversation.viewed")  # newest first


def test_pages_of_fifty(app, admin):
    with app.app_context():
        for n in range(60):
            audit.record("test.event", None, "thing", f"t-{n:02d}")
        db.session.commit()
    first = admin.http.get("/admin/audit_log/?flt0_action_equals=test.event").get_data(as_text=True)
    second = admin.http.get("/admin/audit_log/?flt0_action_equals=test.event&page=1").get_data(as_text=True)
    shown = [re.findall(r"thing t-(\d\d)", page) for page in (first, second)]
    assert [len(ids) for ids in shown] == [50, 10]
    assert shown[0][0] == "59" and shown[1][-1] == "00"  # newest first across pages


def test_csv_export_of_the_filtered_rows_is_formula_safe_and_audited(app, admin):
    with app.app_context():
        accounts.register("eve@example.com", PASSWORD, display_name="=HYPERLINK(\"http://x\")")
        eve_id = db.session.scalar(select(User.id).where(User.email == "eve@example.com"))
        audit.record("note.added", eve_id, "user", eve_id, text="+1 -2 @3")
        db.session.commit()
    response = admin.http.get("/admin/audit_log/export.csv?flt0_action_equals=note.added")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    [row] = export_rows(response)
    with app.app_context():  # the streamed export gave its database connection back
        assert db.engine.pool.checkedout() == 0
    assert row["action"] == "note.added"
    assert row["actor_email"] == "eve@example.com" and row["target_email"] == "eve@example.com"
    assert row["actor_name"] == "'=HYPERLINK(\"http://x\")"
    assert row["target_id"] == str(eve_id)
    with app.app_context():
        exported = db.session.scalar(select(AuditLog).where(AuditLog.action == "audit.exported"))
        assert exported.actor_id == user_id(app, ADMIN_EMAIL)
        assert "note.added" in exported.details["query"]


def test_csv_cells_that_start_like_a_formula_are_prefixed():
    from bestchat.admin.audit import csv_cell

    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "plain", None, 5)] == \
        ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "plain", "", "5"]


def test_the_export_names_deleted_accounts(app, admin):
    sign_up(app, "bob@example.com")
    bob_id = user_id(app, "bob@example.com")
    with app.app_context():
        accounts.delete_user(db.session.get(User, user_id(app, ADMIN_EMAIL)), db.session.get(User, bob_id))
    rows = export_rows(admin.http.get("/admin/audit_log/export.csv?flt0_action_equals=user.registered"))
    bob_row = next(r for r in rows if r["target_id"] == str(bob_id))
    assert bob_row["actor_email"] == "deleted account" and bob_row["target_email"] == "deleted account"
