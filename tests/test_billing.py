"""Billing with Stripe on: the plans a user sees, Checkout and the billing portal through a
fake Stripe API (the requests Stripe receives), and the webhook: signed events applied once, in
order; unsigned, wrongly signed, stale, replayed and out-of-order events change nothing; the
secret key never in a response or the logs."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from sqlalchemy import func, select

from bestchat.extensions import db
from bestchat.models import AuditLog, Plan, StripeEvent, Subscription, User
from bestchat.services import accounts, billing
from bestchat.testing.client import assert_error
from tests.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, billing_config, event, signed

WEBHOOK = "/api/v1/billing/webhook"


@pytest.fixture
def app_config(fake_stripe):
    return billing_config(fake_stripe)


@pytest.fixture
def plans(app):
    """Free (the default), Pro (sold: price_pro), Team (sold: price_team), Staff (admin only)
    and an inactive plan; returns their ids by name."""
    with app.app_context():
        rows = [Plan(name="Free", is_default=True, limit_tokens_per_day=1000),
                Plan(name="Pro", stripe_price_id="price_pro", price_cents=1500, limit_tokens_per_day=100000,
                     description="For people who chat a lot"),
                Plan(name="Team", stripe_price_id="price_team", price_cents=4000),
                Plan(name="Staff"),
                Plan(name="Old", stripe_price_id="price_old", active=False)]
        db.session.add_all(rows)
        db.session.commit()
        return {plan.name: str(plan.id) for plan in rows}


def user_row(app, email="alice@example.com") -> str:
    with app.app_context():
        return str(db.session.scalar(select(User.id).where(User.email == email)))


def subscription(app, user_id: str) -> dict | None:
    with app.app_context():
        row = db.session.scalar(select(Subscription).where(Subscription.user_id == uuid.UUID(user_id)))
        if row is None:
            return None
        return {"plan_id": str(row.plan_id), "status": row.status, "source": row.source,
                "customer": row.stripe_customer_id, "stripe_id": row.stripe_subscription_id,
                "cancel_at_period_end": row.cancel_at_period_end, "period_end": row.current_period_end,
                "last_event_at": row.last_event_at}


def deliver(client, body, secret=WEBHOOK_SECRET, timestamp=None):
    payload, headers = signed(body, secret, timestamp)
    return client.http.post(WEBHOOK, data=payload, headers=headers)


def completed(user_id, plan_id, *, event_id="evt_checkout", created=None, sub="sub_1", customer="cus_1"):
    return event("checkout.session.completed", {
        "id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "status": "complete",
        "payment_status": "paid", "client_reference_id": user_id, "customer": customer, "subscription": sub,
        "metadata": {"user_id": user_id, "plan_id": plan_id}}, event_id=event_id, created=created)


def sub_event(kind, *, event_id, created, status="active", price="price_pro", sub="sub_1", customer="cus_1",
              cancel_at_period_end=False, period_end=1893456000):
    return event(f"customer.subscription.{kind}", {
        "id": sub, "object": "subscription", "customer": customer, "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price, "object": "price"},
                                              "current_period_end": period_end}]}},
        event_id=event_id, created=created)


def subscribed(app, client, plans, created=None) -> str:
    """Alice bought Pro through Checkout (the webhook applied); returns her id."""
    alice = user_row(app)
    assert deliver(client, completed(alice, plans["Pro"], created=created)).status_code == 200
    return alice


# ---- what the user sees ---------------------------------------------------------------------

def test_overview_lists_the_active_plans_with_the_default_current(app, client, user, plans):
    body = client.get("/api/v1/billing").get_json()
    assert body["enabled"] is True
    assert body["plan"] == {"id": plans["Free"], "name": "Free", "source": "default", "status": "active"}
    assert body["subscription"] is None
    by_name = {plan["name"]: plan for plan in body["plans"]}
    assert set(by_name) == {"Free", "Pro", "Team", "Staff"}
    assert by_name["Pro"]["purchasable"] is True and by_name["Staff"]["purchasable"] is False
    assert by_name["Free"]["current"] is True and by_name["Pro"]["current"] is False
    assert by_name["Pro"]["limits"] == {"requests_per_minute": None, "tokens_per_day": 100000,
                                        "cost_per_month": None, "concurrent_generations": None}
    assert by_name["Pro"]["price_cents"] == 1500 and by_name["Pro"]["description"] == "For people who chat a lot"


def test_billing_needs_a_signed_in_user(app, client, plans):
    assert_error(client.get("/api/v1/billing"), 401)
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": plans["Pro"]}), 401)
    assert_error(client.post("/api/v1/billing/portal"), 401)


# ---- Checkout -------------------------------------------------------------------------------

def test_checkout_creates_a_subscription_session_and_returns_its_url(app, client, user, plans, fake_stripe):
    response = client.post("/api/v1/billing/checkout", {"plan_id": plans["Pro"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["url"].startswith("https://checkout.stripe.test/")
    [sent] = fake_stripe.of("/v1/checkout/sessions")
    alice = user_row(app)
    assert sent.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert sent.form["mode"] == "subscription"
    assert sent.form["line_items[0][price]"] == "price_pro"
    assert sent.form["line_items[0][quantity]"] == "1"
    assert sent.form["client_reference_id"] == alice
    assert sent.form["metadata[user_id]"] == alice and sent.form["metadata[plan_id]"] == plans["Pro"]
    assert sent.form["subscription_data[metadata][plan_id]"] == plans["Pro"]
    assert sent.form["customer_email"] == "alice@example.com" and "customer" not in sent.form
    assert sent.form["success_url"].startswith("https://chat.example.com/plan")
    assert sent.form["cancel_url"].startswith("https://chat.example.com/plan")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action == "billing.checkout")) == 1


def test_checkout_refuses_unknown_inactive_and_unsold_plans(app, client, user, plans, fake_stripe):
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": str(uuid.uuid4())}), 404, "not_found")
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": "nope"}), 404, "not_found")
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": plans["Old"]}), 404, "not_found")
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": plans["Staff"]}), 409, "not_purchasable")
    assert_error(client.post("/api/v1/billing/checkout", {}), 400, "missing_field")
    assert fake_stripe.requests == []


def test_a_paying_user_changes_plan_in_the_portal_and_a_returning_one_keeps_the_customer(
        app, client, user, plans, fake_stripe):
    alice = subscribed(app, client, plans, created=int(time.time()) - 100)
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": plans["Team"]}), 409, "already_subscribed")
    deliver(client, sub_event("deleted", event_id="evt_del", created=int(time.time()) - 50, status="canceled"))
    assert client.post("/api/v1/billing/checkout", {"plan_id": plans["Team"]}).status_code == 200
    [sent] = fake_stripe.of("/v1/checkout/sessions")
    assert sent.form["customer"] == "cus_1" and "customer_email" not in sent.form
    assert subscription(app, alice)["status"] == "canceled"


def test_stripe_unreachable_is_a_503_without_details(app, client, user, plans, fake_stripe, caplog):
    fake_stripe.fail_with = 500
    with caplog.at_level(logging.DEBUG):
        response = client.post("/api/v1/billing/checkout", {"plan_id": plans["Pro"]})
    error = assert_error(response, 503, "billing_unavailable")
    assert "fake failure" not in error["message"]
    assert SECRET_KEY not in caplog.text and SECRET_KEY[-12:] not in caplog.text


# ---- the billing portal ---------------------------------------------------------------------

def test_portal_needs_a_stripe_customer(app, client, user, plans, fake_stripe):
    assert_error(client.post("/api/v1/billing/portal"), 409, "no_customer")
    subscribed(app, client, plans)
    response = client.post("/api/v1/billing/portal")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["url"].startswith("https://billing.stripe.test/")
    [sent] = fake_stripe.of("/v1/billing_portal/sessions")
    assert sent.form == {"customer": "cus_1", "return_url": "https://chat.example.com/plan"}


# ---- the webhook ----------------------------------------------------------------------------

def test_checkout_completed_puts_the_user_on_the_plan(app, client, user, plans):
    alice = subscribed(app, client, plans)
    row = subscription(app, alice)
    assert row["plan_id"] == plans["Pro"] and row["status"] == "active" and row["source"] == "stripe"
    assert row["customer"] == "cus_1" and row["stripe_id"] == "sub_1"
    body = client.get("/api/v1/billing").get_json()
    assert body["plan"] == {"id": plans["Pro"], "name": "Pro", "source": "stripe", "status": "active"}
    assert body["subscription"]["source"] == "stripe"
    with app.app_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "billing.webhook"))
        assert entry.target_id == alice and entry.details["type"] == "checkout.session.completed"


def test_the_webhook_needs_no_session_or_csrf_token(app, client, user, plans):
    # The signed-in client has a session cookie but sends no X-CSRF-Token header.
    client.csrf = None
    alice = subscribed(app, client, plans)
    assert subscription(app, alice)["plan_id"] == plans["Pro"]


def test_subscription_updated_changes_status_plan_period_and_cancellation(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    response = deliver(client, sub_event("updated", event_id="evt_up", created=now - 50, price="price_team",
                                         cancel_at_period_end=True, period_end=1893456000))
    assert response.status_code == 200 and response.get_json() == {"received": True}
    row = subscription(app, alice)
    assert row["plan_id"] == plans["Team"] and row["cancel_at_period_end"] is True
    assert row["period_end"].year == 2030 and row["last_event_at"] == now - 50
    body = client.get("/api/v1/billing").get_json()
    assert body["subscription"]["current_period_end"] == "2030-01-01T00:00:00Z"
    assert body["subscription"]["cancel_at_period_end"] is True


def test_a_replayed_event_changes_nothing(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    past_due = sub_event("updated", event_id="evt_1", created=now - 50, status="past_due")
    assert deliver(client, past_due).status_code == 200
    assert deliver(client, sub_event("updated", event_id="evt_2", created=now - 40)).status_code == 200
    assert deliver(client, past_due).status_code == 200  # Stripe retries: same id
    assert subscription(app, alice)["status"] == "active"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 3
        assert db.session.scalar(select(func.count()).select_from(AuditLog)
                                 .where(AuditLog.action == "billing.webhook")) == 3


def test_an_older_event_arriving_late_changes_nothing(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    deliver(client, sub_event("updated", event_id="evt_new", created=now - 10, cancel_at_period_end=True))
    deliver(client, sub_event("updated", event_id="evt_old", created=now - 20, status="past_due",
                              price="price_team"))
    row = subscription(app, alice)
    assert row["status"] == "active" and row["plan_id"] == plans["Pro"] and row["cancel_at_period_end"] is True
    with app.app_context():
        assert db.session.get(StripeEvent, "evt_old") is not None  # recorded all the same


@pytest.mark.parametrize("case", ["unsigned", "wrong secret", "stale", "tampered"])
def test_unverified_deliveries_are_refused_and_change_nothing(app, client, user, plans, case):
    alice = user_row(app)
    body = completed(alice, plans["Pro"])
    if case == "unsigned":
        import json
        response = client.http.post(WEBHOOK, data=json.dumps(body), headers={"Content-Type": "application/json"})
    elif case == "wrong secret":
        response = deliver(client, body, secret="whsec_someoneElse")
    elif case == "stale":
        response = deliver(client, body, timestamp=int(time.time()) - 3600)
    else:
        payload, headers = signed(body, WEBHOOK_SECRET)
        response = client.http.post(WEBHOOK, data=payload.replace(plans["Pro"], plans["Team"]), headers=headers)
    error = assert_error(response, 400, "invalid_signature")
    assert WEBHOOK_SECRET not in str(error)
    assert subscription(app, alice) is None
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def test_a_signed_body_that_is_not_an_event_is_refused(app, client, user, plans):
    for body in ("not json", "[1, 2]", "null", '"text"'):
        assert_error(deliver(client, body), 400, "invalid_payload")
    misshapen = event("customer.subscription.updated", {"id": 7, "metadata": [1], "items": "x"}, event_id="evt_bad")
    assert_error(deliver(client, misshapen), 400, "invalid_payload")
    with app.app_context():
        assert db.session.get(StripeEvent, "evt_bad") is None  # nothing stored: a corrected delivery applies
    assert_error(deliver(client, {"id": "evt_x", "type": "x"}), 400, "invalid_payload")


def test_a_body_larger_than_an_event_is_refused(app, client, plans):
    response = client.http.post(WEBHOOK, data="x" * (300 * 1024), headers={"Content-Type": "application/json",
                                                                         "Stripe-Signature": "t=1,v1=0"})
    assert_error(response, 413)


def test_deleted_subscription_falls_back_to_the_default_plan(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    deliver(client, sub_event("deleted", event_id="evt_del", created=now - 10, status="canceled"))
    assert subscription(app, alice)["status"] == "canceled"
    body = client.get("/api/v1/billing").get_json()
    assert body["plan"] == {"id": plans["Free"], "name": "Free", "source": "default", "status": "active"}


def test_a_late_event_of_an_earlier_subscription_leaves_the_new_one_alone(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    deliver(client, completed(alice, plans["Team"], event_id="evt_again", created=now - 50, sub="sub_2"))
    deliver(client, sub_event("deleted", event_id="evt_del_old", created=now - 10, status="canceled", sub="sub_1"))
    row = subscription(app, alice)
    assert row["status"] == "active" and row["plan_id"] == plans["Team"] and row["stripe_id"] == "sub_2"


def test_payment_failed_marks_the_subscription_past_due(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    failed = event("invoice.payment_failed", {"id": "in_1", "object": "invoice", "customer": "cus_1",
                                              "parent": {"subscription_details": {"subscription": "sub_1"}}},
                   event_id="evt_fail", created=now - 10)
    assert deliver(client, failed).status_code == 200
    assert subscription(app, alice)["status"] == "past_due"
    body = client.get("/api/v1/billing").get_json()
    assert body["plan"]["name"] == "Pro" and body["plan"]["status"] == "past_due"
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).where(AuditLog.action == "billing.webhook")).all()
        assert [e.details["status"] for e in entries if e.details["type"] == "invoice.payment_failed"] == ["past_due"]


def test_events_for_no_known_user_are_recorded_and_ignored(app, client, plans):
    response = deliver(client, sub_event("updated", event_id="evt_stranger", created=int(time.time()),
                                         sub="sub_x", customer="cus_x"))
    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0
        assert db.session.get(StripeEvent, "evt_stranger") is not None


# ---- the admin's assignment with billing on -------------------------------------------------

def test_an_admin_assignment_wins_over_stripe_until_the_next_checkout(app, client, user, plans):
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    with app.app_context():
        actor = accounts.register("root@example.com", "correct horse battery", role="admin")
        billing.assign_plan(actor, db.session.get(User, uuid.UUID(alice)),
                            db.session.get(Plan, uuid.UUID(plans["Staff"])))
    deliver(client, sub_event("updated", event_id="evt_after", created=now - 10, price="price_team"))
    row = subscription(app, alice)
    assert row["plan_id"] == plans["Staff"] and row["source"] == "admin" and row["customer"] == "cus_1"
    assert client.get("/api/v1/billing").get_json()["plan"]["source"] == "admin"
    assert client.post("/api/v1/billing/portal").status_code == 200  # still their Stripe customer


# ---- secrets --------------------------------------------------------------------------------

def test_the_keys_are_never_in_responses_or_logs(app, client, user, plans, caplog):
    with caplog.at_level(logging.DEBUG):
        texts = [client.get("/api/v1/billing").get_data(as_text=True),
                 client.post("/api/v1/billing/checkout", {"plan_id": plans["Pro"]}).get_data(as_text=True),
                 deliver(client, completed(user_row(app), plans["Pro"])).get_data(as_text=True),
                 client.post("/api/v1/billing/portal").get_data(as_text=True),
                 deliver(client, {"id": "x"}, secret="whsec_wrong").get_data(as_text=True),
                 client.get("/api/v1/openapi.json").get_data(as_text=True)]
    for secret in (SECRET_KEY, WEBHOOK_SECRET):
        assert all(secret not in text for text in texts)
        assert secret not in caplog.text
    with app.app_context():
        details = " ".join(str(entry.details) for entry in db.session.scalars(select(AuditLog)))
        assert SECRET_KEY not in details and WEBHOOK_SECRET not in details


def test_two_deliveries_of_one_event_at_once_apply_it_once(app, client, user, plans, monkeypatch):
    """The second delivery checked before the first committed: its insert of the event id
    conflicts, and it answers 200 with nothing changed."""
    from bestchat.services import stripe_events

    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    past_due = sub_event("updated", event_id="evt_race", created=now - 50, status="past_due")
    assert deliver(client, past_due).status_code == 200
    with app.app_context():
        row = db.session.scalar(select(Subscription).where(Subscription.user_id == uuid.UUID(alice)))
        row.status = "active"  # what a later event would have set
        db.session.commit()
    real, calls = stripe_events._known, []

    def known(event_id):  # the first check misses the other delivery's uncommitted row
        calls.append(event_id)
        return len(calls) > 1 and real(event_id)

    monkeypatch.setattr(stripe_events, "_known", known)
    assert deliver(client, past_due).status_code == 200
    assert calls == ["evt_race", "evt_race"]  # checked again after the conflict
    assert subscription(app, alice)["status"] == "active"


def test_each_change_applies_to_the_users_limits_at_once(app, client, user, plans):
    def tokens_per_day():
        return client.get("/api/v1/usage").get_json()["limits"]["tokens_per_day"]["limit"]

    assert tokens_per_day() == 1000  # the default plan
    now = int(time.time())
    alice = subscribed(app, client, plans, created=now - 100)
    assert tokens_per_day() == 100000  # Pro, bought through Checkout
    deliver(client, sub_event("deleted", event_id="evt_d", created=now - 50, status="canceled"))
    assert tokens_per_day() == 1000  # back on the default plan
    with app.app_context():
        actor = accounts.register("root@example.com", "correct horse battery", role="admin")
        billing.assign_plan(actor, db.session.get(User, uuid.UUID(alice)),
                            db.session.get(Plan, uuid.UUID(plans["Staff"])))
    assert tokens_per_day() is None  # Staff sets no limit
