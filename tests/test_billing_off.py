"""Billing off (no Stripe keys, the default): the user sees the plans, none purchasable;
checkout, portal and the webhook answer 404 billing_disabled; plans come from the admin."""

from __future__ import annotations

from bestchat.extensions import db
from bestchat.models import Plan
from bestchat.testing.client import assert_error


def test_billing_off_refuses_the_stripe_routes_and_lists_the_plans(app, client, user):
    with app.app_context():
        pro = Plan(name="Pro", stripe_price_id="price_pro", price_cents=1500)
        db.session.add(pro)
        db.session.commit()
        pro_id = str(pro.id)
    body = client.get("/api/v1/billing").get_json()
    assert body["enabled"] is False and body["plan"] is None and body["subscription"] is None
    assert [(p["name"], p["purchasable"]) for p in body["plans"]] == [("Pro", False)]
    assert_error(client.post("/api/v1/billing/checkout", {"plan_id": pro_id}), 404, "billing_disabled")
    assert_error(client.post("/api/v1/billing/portal"), 404, "billing_disabled")
    response = client.http.post("/api/v1/billing/webhook", data="{}",
                                headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"})
    assert_error(response, 404, "billing_disabled")


def test_one_key_alone_does_not_turn_billing_on(app, client, user):
    app.config["STRIPE_SECRET_KEY"] = "sk_test_only_the_key"
    assert client.get("/api/v1/billing").get_json()["enabled"] is False
    assert "sk_test_only_the_key" not in client.get("/api/v1/billing").get_data(as_text=True)
