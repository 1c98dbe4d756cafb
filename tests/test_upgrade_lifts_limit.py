"""The issue's whole story, through the public API: a user on a limited default plan is
stopped at its limit with a message saying which limit and when it resets, buys a larger plan
through Stripe Checkout (a local fake Stripe), and once Stripe's signed webhook arrives is let
through again. Runs on both backends, generations in-process with the demo provider."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Plan, User
from bestchat.testing import send_and_wait, wait_for_answer
from tests.fake_stripe import WEBHOOK_SECRET, billing_config, event, signed

DEMO = {"tokens_per_second": 0}


@pytest.fixture
def app_config(fake_stripe):
    return billing_config(fake_stripe)


@pytest.fixture
def plans(app):
    with app.app_context():
        free = Plan(name="Free", is_default=True, limit_tokens_per_day=20)
        pro = Plan(name="Pro", stripe_price_id="price_pro", price_cents=1500)
        db.session.add_all([free, pro])
        db.session.commit()
        return {"Free": str(free.id), "Pro": str(pro.id)}


def send(client, conversation_id):
    return client.post(f"/api/v1/conversations/{conversation_id}/messages", {"content": "tell me more"})


def refused_once_counted(client, conversation_id, timeout=10.0):
    """The next send, once the first answer's tokens are counted (the worker counts them just
    after it stores the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        response = send(client, conversation_id)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        wait_for_answer(client, response.get_json()["assistant_message"]["id"])


def test_a_limited_user_is_stopped_then_let_through_after_upgrading(app, client, user, plans, fake_stripe):
    first = send_and_wait(client, "hello", model="demo/demo", settings=DEMO)
    assert first["status"] == "complete" and first["usage"]["completion_tokens"] > 0

    refused = refused_once_counted(client, first["conversation_id"])
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "limit_tokens_per_day" and error["limit"] == 20 and error["used"] >= 20
    assert error["limit_source"] == "plan" and error["resets_at"].endswith("T00:00:00Z")
    assert "20 tokens" in error["message"] and "resets" in error["message"]
    assert int(refused.headers["Retry-After"]) > 0

    checkout = client.post("/api/v1/billing/checkout", {"plan_id": plans["Pro"]})
    assert checkout.status_code == 200 and checkout.get_json()["url"].startswith("https://")
    assert send(client, first["conversation_id"]).status_code == 429  # paid only once Stripe says so

    with app.app_context():
        user_id = str(db.session.scalar(select(User.id).where(User.email == "alice@example.com")))
    completed = event("checkout.session.completed", {
        "id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "status": "complete",
        "payment_status": "paid", "client_reference_id": user_id, "customer": "cus_1",
        "subscription": "sub_1", "metadata": {"user_id": user_id, "plan_id": plans["Pro"]}},
        event_id="evt_upgrade")
    payload, headers = signed(completed, WEBHOOK_SECRET)
    assert client.http.post("/api/v1/billing/webhook", data=payload, headers=headers).status_code == 200

    answer = send_and_wait(client, "and now?", conversation_id=first["conversation_id"])
    assert answer["status"] == "complete"
    usage = client.get("/api/v1/usage").get_json()
    assert usage["plan"]["name"] == "Pro" and usage["limits"]["tokens_per_day"]["limit"] is None
