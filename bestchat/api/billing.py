"""``/api/v1/billing``: the user's plan and the plans on offer, Stripe Checkout, the billing
portal, and Stripe's webhook.

The webhook is Stripe calling the server: it carries no session or token (its signature is
its authentication, checked by :mod:`bestchat.services.stripe_events`), so the API's session
and CSRF checks are skipped for it (:data:`PUBLIC_ENDPOINTS`), its raw body is read up to
:data:`WEBHOOK_MAX_BYTES`, and a refusal says only which check failed.
"""

from __future__ import annotations

from flask import current_app, g, request

from bestchat.api import bp
from bestchat.api.openapi import array, documented, nullable, obj, string
from bestchat.errors import TooLarge
from bestchat.security.authn import login_required
from bestchat.services import billing, stripe_events
from bestchat.validation import field, json_body, parse_uuid

# Stripe's events are a few kilobytes; anything far larger is not one.
WEBHOOK_MAX_BYTES = 256 * 1024

_LIMITS = obj({"requests_per_minute": nullable({"type": "integer"}), "tokens_per_day": nullable({"type": "integer"}),
               "cost_per_month": nullable({"type": "number"}),
               "concurrent_generations": nullable({"type": "integer"})})
_PLAN = nullable(obj({"id": string(format="uuid"), "name": string(),
                      "source": string(enum=["stripe", "admin", "default"]), "status": string()},
                     ("id", "name", "source", "status")))
_BILLING = obj({
    "enabled": {"type": "boolean"},
    "plan": _PLAN,
    "subscription": nullable(obj({"status": string(), "current_period_end": nullable(string(format="date-time")),
                                  "cancel_at_period_end": {"type": "boolean"},
                                  "source": string(enum=["stripe", "admin"])})),
    "plans": array(obj({"id": string(format="uuid"), "name": string(), "description": nullable(string()),
                        "price_cents": {"type": "integer"}, "purchasable": {"type": "boolean"},
                        "current": {"type": "boolean"}, "limits": _LIMITS})),
}, ("enabled", "plan", "subscription", "plans"))
_URL = obj({"url": string(format="uri")}, ("url",))
_EVENT = obj({"id": string(255), "type": string(), "created": {"type": "integer"},
              "data": obj({"object": {"type": "object"}})}, ("id", "type", "created", "data"))
_SIGNATURE = {"name": "Stripe-Signature", "in": "header", "required": True, "schema": string(),
              "description": "t=<timestamp>,v1=<HMAC-SHA256 of '<timestamp>.<body>' with the webhook secret>"}


def _base_url() -> str:
    """Where Stripe sends the user back: ``BILLING_PUBLIC_URL``, else this request's host."""
    return (current_app.config.get("BILLING_PUBLIC_URL") or request.host_url).rstrip("/")


@bp.get("/billing")
@documented(responses={200: _BILLING})
@login_required
def get_billing():
    """Whether billing is enabled, the user's plan and subscription, and the active plans
    (``purchasable``: sold through Stripe Checkout on this server; ``current``: the user's)."""
    return billing.overview(g.user)


@bp.post("/billing/checkout")
@documented(body=obj({"plan_id": string(format="uuid")}, ("plan_id",)), responses={200: _URL})
@login_required
def checkout():
    """Start buying a plan. Body: {plan_id}. 200 with the Stripe Checkout ``url`` to send the
    browser to; 404 unknown plan or ``billing_disabled``; 409 ``not_purchasable`` (no Stripe
    price) or ``already_subscribed`` (change plan in the billing portal)."""
    plan_id = parse_uuid(field(json_body(), "plan_id", max_length=36), "plan")
    return {"url": billing.start_checkout(g.user, plan_id, _base_url())}


@bp.post("/billing/portal")
@documented(responses={200: _URL})
@login_required
def portal():
    """Open Stripe's billing portal (payment method, invoices, plan change, cancellation). 200
    with its ``url``; 409 ``no_customer`` before any purchase; 404 ``billing_disabled``."""
    return {"url": billing.open_portal(g.user, _base_url())}


@bp.post("/billing/webhook")
@documented(body=_EVENT, parameters=[_SIGNATURE],
            responses={200: obj({"received": {"type": "boolean"}}, ("received",))})
def webhook():
    """Stripe's webhook (no session or token: the ``Stripe-Signature`` header authenticates
    it). 200 once the event is applied, or already was; 400 ``invalid_signature`` or
    ``invalid_payload``; 404 ``billing_disabled``."""
    if (request.content_length or 0) > WEBHOOK_MAX_BYTES:
        raise TooLarge(None, "the body is larger than a Stripe event")
    payload = request.stream.read(WEBHOOK_MAX_BYTES + 1)
    if len(payload) > WEBHOOK_MAX_BYTES:
        raise TooLarge(None, "the body is larger than a Stripe event")
    stripe_events.receive(payload, request.headers.get("Stripe-Signature"))
    return {"received": True}


webhook.public = True  # skips the API's session and CSRF checks (bestchat.api.authenticate_unless_public)
