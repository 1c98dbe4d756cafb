"""Usage limits in the admin console: a group's limits on its form and a user's own limits on
their manage page; checked (whole numbers, amounts, blank = not set), audit-logged, refused
input changing nothing, only admins allowed, and the new values applying to the next send."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import AuditLog, Group
from bestchat.models.limits import UserLimits
from bestchat.services import accounts, groups, limits
from tests.admin_helpers import PASSWORD, form_post, sign_up, user_id

BLANK = {"limit_requests_per_minute": "", "limit_tokens_per_day": "", "limit_cost_per_month": "",
         "limit_concurrent_generations": ""}


def group_form(name: str, **values) -> dict:
    return {"name": name, "description": "", "models_mode": "all", "tools_mode": "all", **BLANK, **values}


def overrides(app, email):
    with app.app_context():
        row = db.session.scalar(select(UserLimits).where(UserLimits.user_id == user_id(app, email)))
        return None if row is None else (row.limit_requests_per_minute, row.limit_tokens_per_day,
                                         row.limit_cost_per_month, row.limit_concurrent_generations)


def test_a_group_gets_limits_from_its_form_and_its_members_get_them(app, admin):
    bob = sign_up(app, "bob@example.com")
    response = form_post(admin, "/admin/groups/new", group_form("Staff", limit_tokens_per_day="20,000",
                                                                 limit_cost_per_month="12.50"))
    assert response.status_code == 302
    with app.app_context():
        group = db.session.scalar(select(Group).where(Group.name == "Staff"))
        assert (group.limit_tokens_per_day, group.limit_cost_per_month, group.limit_requests_per_minute) == (
            20000, Decimal("12.5"), None)
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "group.created"))
        assert entry.details["limits"]["tokens_per_day"] == "20000"
        group_id = group.id
        actor = accounts.register("owner@example.com", PASSWORD, role="admin")
        groups.add_member(actor, group, "bob@example.com")
        assert limits.effective(user_id(app, "bob@example.com")).tokens_per_day == limits.Limit(20000, "group")

    page = admin.get(f"/admin/groups/{group_id}/").get_data(as_text=True)
    assert 'name="limit_tokens_per_day"' in page and 'value="20000"' in page
    form_post(admin, f"/admin/groups/{group_id}/", group_form("Staff", limit_tokens_per_day=""))
    with app.app_context():
        assert limits.effective(user_id(app, "bob@example.com")).tokens_per_day == limits.Limit(None, None)
    assert bob


def test_bad_group_limits_are_refused_and_change_nothing(app, admin):
    for bad in ({"limit_tokens_per_day": "-1"}, {"limit_requests_per_minute": "1.5"},
                {"limit_cost_per_month": "abc"}, {"limit_cost_per_month": "1.00001"}):
        response = form_post(admin, "/admin/groups/new", group_form("Staff", **bad))
        assert response.status_code == 400
        assert "must be" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Group)) is None


def test_a_users_limits_section_sets_clears_and_audits_their_overrides(app, admin):
    sign_up(app, "bob@example.com")
    bob = user_id(app, "bob@example.com")
    page = admin.get(f"/admin/users/manage/?id={bob}").get_data(as_text=True)
    assert "<h3>Limits</h3>" in page and 'name="limit_concurrent_generations"' in page

    response = form_post(admin, f"/admin/users/manage/limits/?id={bob}",
                         {**BLANK, "limit_requests_per_minute": "10", "limit_cost_per_month": "$5"})
    assert response.status_code == 302
    assert overrides(app, "bob@example.com") == (10, None, Decimal("5"), None)
    with app.app_context():
        assert limits.effective(bob).requests_per_minute == limits.Limit(10, "user")
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "user.limits_set"))
        assert entry.details["changes"]["requests_per_minute"] == {"from": "", "to": "10"}
    assert 'value="10"' in admin.get(f"/admin/users/manage/?id={bob}").get_data(as_text=True)

    response = form_post(admin, f"/admin/users/manage/limits/?id={bob}", {**BLANK, "limit_tokens_per_day": "x"})
    assert response.status_code == 400 and "whole number" in response.get_data(as_text=True)
    assert overrides(app, "bob@example.com") == (10, None, Decimal("5"), None)

    form_post(admin, f"/admin/users/manage/limits/?id={bob}", BLANK)
    assert overrides(app, "bob@example.com") is None
    with app.app_context():
        assert limits.effective(bob) == limits.NO_LIMITS


def test_only_an_admin_with_a_csrf_token_sets_limits(app, admin):
    bob_client = sign_up(app, "bob@example.com")
    bob = user_id(app, "bob@example.com")
    data = {**BLANK, "limit_tokens_per_day": "1"}
    assert form_post(bob_client, f"/admin/users/manage/limits/?id={bob}", data).status_code in (302, 403)
    assert form_post(admin, f"/admin/users/manage/limits/?id={bob}", data, csrf=False).status_code in (400, 403)
    assert overrides(app, "bob@example.com") is None
