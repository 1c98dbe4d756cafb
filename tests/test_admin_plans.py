"""The console's plans page and the "Plan" section of a user's page: creating and editing plans
with their four limits, Stripe price and displayed price; one default plan at most;
deactivating; bad input refused with nothing changed; every change audited; an admin putting a
user on a plan and taking it away (billing off), which the user sees in GET /api/v1/billing."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import AuditLog, Plan, Subscription
from tests.admin_helpers import form_post, sign_up, user_id


def plan(app, name: str) -> Plan | None:
    with app.app_context():
        row = db.session.scalar(select(Plan).where(Plan.name == name))
        if row is not None:
            db.session.expunge(row)
        return row


def fields(**overrides) -> dict:
    values = {"name": "Pro", "description": "More of everything", "price": "15.00", "stripe_price_id": "price_pro",
              "limit_requests_per_minute": "60", "limit_tokens_per_day": "200000", "limit_cost_per_month": "25.50",
              "limit_concurrent_generations": "3", "active": "on"}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def audited(app, action: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action))


def test_create_a_plan_with_its_limits(app, admin):
    response = form_post(admin, "/admin/plans/new", fields())
    assert response.status_code == 302
    pro = plan(app, "Pro")
    assert response.headers["Location"].endswith(f"/admin/plans/{pro.id}/")
    assert (pro.limit_requests_per_minute, pro.limit_tokens_per_day, pro.limit_cost_per_month,
            pro.limit_concurrent_generations) == (60, 200000, Decimal("25.5"), 3)
    assert pro.price_cents == 1500 and pro.stripe_price_id == "price_pro" and pro.active and not pro.is_default
    assert audited(app, "plan.created") == 1
    page = admin.get("/admin/plans/").get_data(as_text=True)
    assert "Pro" in page and "price_pro" in page and "$15.00" in page and "200000" in page
    edit = admin.get(f"/admin/plans/{pro.id}/").get_data(as_text=True)
    assert 'value="25.5"' in edit and 'value="200000"' in edit


def test_empty_limits_are_no_limit_and_edits_persist(app, admin):
    form_post(admin, "/admin/plans/new", fields(limit_tokens_per_day="", limit_cost_per_month=""))
    pro = plan(app, "Pro")
    assert pro.limit_tokens_per_day is None and pro.limit_cost_per_month is None
    response = form_post(admin, f"/admin/plans/{pro.id}/", fields(name="Pro+", limit_tokens_per_day="5000",
                                                                  limit_cost_per_month="100", stripe_price_id=""))
    assert response.status_code == 302
    edited = plan(app, "Pro+")
    assert edited.id == pro.id and edited.limit_tokens_per_day == 5000 and edited.stripe_price_id is None
    assert 'value="100"' in admin.get(f"/admin/plans/{pro.id}/").get_data(as_text=True)
    assert audited(app, "plan.updated") == 1


def test_one_default_plan_at_most(app, admin):
    form_post(admin, "/admin/plans/new", fields(name="Free", stripe_price_id="", price="0", is_default="on"))
    form_post(admin, "/admin/plans/new", fields(name="Basic", stripe_price_id="", price="0", is_default="on"))
    assert plan(app, "Basic").is_default and not plan(app, "Free").is_default


def test_deactivate_a_plan(app, admin):
    form_post(admin, "/admin/plans/new", fields())
    pro = plan(app, "Pro")
    form_post(admin, f"/admin/plans/{pro.id}/", fields(active=None))
    assert plan(app, "Pro").active is False
    assert "inactive" in admin.get("/admin/plans/").get_data(as_text=True)


@pytest.mark.parametrize("bad, message", [
    ({"name": ""}, "needs a name"),
    ({"limit_tokens_per_day": "lots"}, "not a number"),
    ({"limit_requests_per_minute": "1.5"}, "whole number"),
    ({"limit_concurrent_generations": "-1"}, "between 0"),
    ({"limit_cost_per_month": "NaN"}, "between 0"),
    ({"price": "1e99"}, "between 0"),
    ({"stripe_price_id": "prod_123"}, "price_"),
    ({"is_default": "on", "active": None}, "must be active"),
])
def test_bad_values_are_refused_and_nothing_changes(app, admin, bad, message):
    response = form_post(admin, "/admin/plans/new", fields(**bad))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Plan)) == 0


def test_a_duplicate_name_is_a_conflict(app, admin):
    form_post(admin, "/admin/plans/new", fields())
    response = form_post(admin, "/admin/plans/new", fields())
    assert response.status_code == 409 and "already exists" in response.get_data(as_text=True)


@pytest.mark.parametrize("bad", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_plans_are_404(app, admin, bad):
    assert admin.get(f"/admin/plans/{bad}/").status_code == 404
    assert form_post(admin, f"/admin/plans/{bad}/", fields()).status_code == 404


# ---- a user's plan --------------------------------------------------------------------------

def test_an_admin_puts_a_user_on_a_plan_and_takes_it_away(app, admin):
    bob = sign_up(app, "bob@example.com")
    bob_id = user_id(app, "bob@example.com")
    form_post(admin, "/admin/plans/new", fields(name="Free", stripe_price_id="", price="0", is_default="on"))
    form_post(admin, "/admin/plans/new", fields(name="Staff", stripe_price_id=""))
    staff = plan(app, "Staff")
    page = admin.get(f"/admin/users/manage/?id={bob_id}").get_data(as_text=True)
    assert "<h3>Plan</h3>" in page and "the default plan" in page

    response = form_post(admin, f"/admin/users/manage/plan/?id={bob_id}", {"plan_id": str(staff.id)})
    assert response.status_code == 302
    seen = bob.get("/api/v1/billing").get_json()
    assert seen["enabled"] is False
    assert seen["plan"] == {"id": str(staff.id), "name": "Staff", "source": "admin", "status": "active"}
    assert seen["subscription"]["source"] == "admin"
    assert all(p["purchasable"] is False for p in seen["plans"])
    assert "assigned by an admin" in admin.get(f"/admin/users/manage/?id={bob_id}").get_data(as_text=True)
    assert audited(app, "billing.plan_assigned") == 1

    form_post(admin, f"/admin/users/manage/plan/?id={bob_id}", {"plan_id": ""})
    assert bob.get("/api/v1/billing").get_json()["plan"]["name"] == "Free"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0
    assert audited(app, "billing.plan_assigned") == 2


def test_assigning_an_unknown_plan_is_404_and_changes_nothing(app, admin):
    sign_up(app, "bob@example.com")
    bob_id = user_id(app, "bob@example.com")
    response = form_post(admin, f"/admin/users/manage/plan/?id={bob_id}", {"plan_id": str(uuid.uuid4())})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0
