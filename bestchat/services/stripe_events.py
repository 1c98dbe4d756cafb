"""Applying Stripe's webhook events to users' subscriptions, each event once and in order.

:func:`receive` checks the ``Stripe-Signature`` header with the webhook secret (Stripe's own
check: HMAC-SHA256 of ``"<t>.<body>"``, timestamp at most five minutes old), then applies the
event in one transaction that also stores its id (:class:`StripeEvent`): a replay of the id,
or two deliveries racing, change nothing the second time. An event older (``created``) than
the last one applied to the subscription is stored and changes nothing, since Stripe does not
deliver in order.

Events applied:

- ``checkout.session.completed``: the user (``client_reference_id``) is on the plan bought
  (``metadata.plan_id``, else the plan of the price), source ``stripe``, status active, with
  Stripe's customer and subscription ids.
- ``customer.subscription.created`` / ``updated``: status, plan (by the price's id), period
  end and ``cancel_at_period_end``.
- ``customer.subscription.deleted``: status canceled (the user falls back to the default plan).
- ``invoice.payment_failed``: status past_due (the plan is kept while Stripe retries).

A subscription an admin assigned (source ``admin``) wins over Stripe's subscription events
until the user buys again through Checkout. Every applied event is audit-logged and the
user's limits are re-read.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.models import Plan, StripeEvent, Subscription, User
from bestchat.services import audit, billing

log = logging.getLogger(__name__)

# Seconds a signature's timestamp may be old (Stripe's default tolerance).
TOLERANCE = 300
# Event times are stored in 32-bit integer columns.
MAX_TIMESTAMP = 2**31 - 1

HANDLED = ("checkout.session.completed", "customer.subscription.created", "customer.subscription.updated",
           "customer.subscription.deleted", "invoice.payment_failed")

# What :func:`receive` did with an event.
APPLIED, DUPLICATE, STALE, IGNORED = "applied", "duplicate", "stale", "ignored"


def receive(payload: bytes, signature: str | None) -> str:
    """Verify and apply one webhook delivery; returns what was done. 404 ``billing_disabled``
    when billing is off, 400 ``invalid_signature`` / ``invalid_payload`` (nothing changed)."""
    billing.require_enabled()
    import stripe  # noqa: PLC0415 - loaded only where billing is on (see bestchat.services.billing)

    try:
        text = payload.decode("utf-8")
        # Verifies the signature, then parses; the event is checked and read as plain JSON below.
        stripe.Webhook.construct_event(text, signature, current_app.config["STRIPE_WEBHOOK_SECRET"], TOLERANCE)
    except (UnicodeDecodeError, stripe.SignatureVerificationError):
        raise Invalid("invalid_signature", "the Stripe-Signature header does not match the body") from None
    except (ValueError, AttributeError, TypeError):  # signed, but not JSON or not an object
        raise Invalid("invalid_payload", "the body is not a Stripe event") from None
    event = _parse(text)
    try:
        outcome = _apply(event)
    except IntegrityError:
        db.session.rollback()
        if not _known(event["id"]):
            raise  # another conflict: nothing stored, Stripe delivers the event again
        return DUPLICATE  # the same event delivered twice at once: the other delivery applied it
    except (AttributeError, TypeError, ValueError):  # signed, but its object is not shaped as Stripe's
        db.session.rollback()
        raise Invalid("invalid_payload", "the event's object is not what Stripe sends for its type") from None
    log.info("stripe event %s (%s): %s", event["id"], event["type"], outcome)
    return outcome


def _parse(text: str) -> dict:
    try:
        event = json.loads(text)
        valid = (isinstance(event, dict) and isinstance(event.get("id"), str) and 0 < len(event["id"]) <= 255
                 and isinstance(event.get("type"), str) and type(event.get("created")) is int
                 and 0 < event["created"] < MAX_TIMESTAMP
                 and isinstance(event.get("data"), dict) and isinstance(event["data"].get("object"), dict))
    except ValueError:
        valid = False
    if not valid:
        raise Invalid("invalid_payload", "the body is not a Stripe event")
    return event


def _apply(event: dict) -> str:
    """Store the event's id and apply it, in one transaction."""
    if _known(event["id"]):
        return DUPLICATE
    db.session.add(StripeEvent(id=event["id"], type=event["type"][:100], created=event["created"]))
    db.session.flush()  # a concurrent delivery of the same id fails here, before any change
    handler = _HANDLERS.get(event["type"])
    subscription = handler(event["data"]["object"], event["created"]) if handler else None
    if subscription is None:
        db.session.commit()
        return IGNORED
    if subscription is STALE:
        db.session.commit()
        return STALE
    subscription.last_event_at = max(subscription.last_event_at or 0, event["created"])
    db.session.flush()
    audit.record("billing.webhook", None, "user", subscription.user_id, event=event["id"], type=event["type"],
                 status=subscription.status, plan=str(subscription.plan_id))
    db.session.commit()
    billing.limits_changed(subscription.user_id)
    return APPLIED


# ---- one handler per event type: the subscription changed, STALE, or None (nothing to do) ----

def _checkout_completed(session: dict, created: int) -> Any:
    if session.get("mode") != "subscription":
        return None
    metadata = session.get("metadata") or {}
    user = _user(session.get("client_reference_id") or metadata.get("user_id"))
    if user is None:
        return None
    plan = _plan_by_id(metadata.get("plan_id"))
    if plan is None:
        return None
    subscription = db.session.scalar(select(Subscription).where(Subscription.user_id == user.id))
    if subscription is None:
        subscription = Subscription(user_id=user.id, plan_id=plan.id)
        db.session.add(subscription)
    elif _stale(subscription, created):
        return STALE
    subscription.plan_id = plan.id
    subscription.source = billing.SOURCE_STRIPE
    subscription.status = "active"
    subscription.cancel_at_period_end = False
    subscription.stripe_customer_id = _id(session.get("customer")) or subscription.stripe_customer_id
    subscription.stripe_subscription_id = _id(session.get("subscription")) or subscription.stripe_subscription_id
    return subscription


def _subscription_changed(stripe_subscription: dict, created: int) -> Any:
    subscription = _find(_id(stripe_subscription.get("id")), _id(stripe_subscription.get("customer")),
                         (stripe_subscription.get("metadata") or {}).get("user_id"))
    if subscription is None or subscription.source != billing.SOURCE_STRIPE:
        return None
    if _stale(subscription, created):
        return STALE
    status = stripe_subscription.get("status")
    if isinstance(status, str) and status:
        subscription.status = status[:32]
    plan = _plan_by_price(_price_of(stripe_subscription))
    if plan is not None:
        subscription.plan_id = plan.id
    subscription.current_period_end = _period_end(stripe_subscription) or subscription.current_period_end
    subscription.cancel_at_period_end = bool(stripe_subscription.get("cancel_at_period_end"))
    subscription.stripe_subscription_id = stripe_subscription.get("id") or subscription.stripe_subscription_id
    return subscription


def _subscription_deleted(stripe_subscription: dict, created: int) -> Any:
    subscription = _subscription_changed(stripe_subscription, created)
    if subscription is not None and subscription is not STALE:
        subscription.status = "canceled"
        subscription.cancel_at_period_end = False
    return subscription


def _payment_failed(invoice: dict, created: int) -> Any:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = _find(_id(invoice.get("subscription")) or _id(details.get("subscription")),
                         _id(invoice.get("customer")), (details.get("metadata") or {}).get("user_id"))
    if subscription is None or subscription.source != billing.SOURCE_STRIPE:
        return None
    if _stale(subscription, created):
        return STALE
    if subscription.status in ("active", "trialing"):
        subscription.status = "past_due"
    return subscription


_HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.payment_failed": _payment_failed,
}


# ---- lookups --------------------------------------------------------------------------------

def _known(event_id: str) -> bool:
    """Whether the event was applied (or ignored) already."""
    return db.session.get(StripeEvent, event_id) is not None


def _stale(subscription: Subscription, created: int) -> bool:
    return subscription.last_event_at is not None and created < subscription.last_event_at


def _id(value: Any) -> str | None:
    """A Stripe id, whether the object is expanded or not."""
    if isinstance(value, dict):
        value = value.get("id")
    return value[:100] if isinstance(value, str) and value else None


def _user(user_id: Any) -> User | None:
    try:
        return db.session.get(User, uuid.UUID(str(user_id))) if user_id else None
    except ValueError:
        return None


def _plan_by_id(plan_id: Any) -> Plan | None:
    try:
        return db.session.get(Plan, uuid.UUID(str(plan_id))) if plan_id else None
    except ValueError:
        return None


def _plan_by_price(price_id: str | None) -> Plan | None:
    if not price_id:
        return None
    return db.session.scalar(select(Plan).where(Plan.stripe_price_id == price_id)
                             .order_by(Plan.active.desc()).limit(1))


def _find(subscription_id: str | None, customer_id: str | None, user_id: Any) -> Subscription | None:
    """The subscription row of a Stripe subscription: by its id, else the user in its metadata,
    else its customer. A row that holds another Stripe subscription is not this one's (an
    event of a user's earlier subscription changes nothing)."""
    if subscription_id:
        found = db.session.scalar(select(Subscription).where(Subscription.stripe_subscription_id == subscription_id))
        if found is not None:
            return found
    found = None
    user = _user(user_id)
    if user is not None:
        found = db.session.scalar(select(Subscription).where(Subscription.user_id == user.id))
    if found is None and customer_id:
        found = db.session.scalar(select(Subscription).where(Subscription.stripe_customer_id == customer_id)
                                  .limit(1))
    if found is not None and subscription_id and found.stripe_subscription_id not in (None, subscription_id):
        return None
    return found


def _items(stripe_subscription: dict) -> list:
    items = (stripe_subscription.get("items") or {}).get("data")
    return items if isinstance(items, list) else []


def _price_of(stripe_subscription: dict) -> str | None:
    for item in _items(stripe_subscription):
        price = _id((item or {}).get("price"))
        if price:
            return price
    return None


def _period_end(stripe_subscription: dict) -> datetime | None:
    """The period end: on the subscription (older API versions) or on its items (newer)."""
    value = stripe_subscription.get("current_period_end")
    if value is None:
        value = next((item.get("current_period_end") for item in _items(stripe_subscription)
                      if isinstance(item, dict) and item.get("current_period_end")), None)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
