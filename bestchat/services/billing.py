"""Billing: the plans a user may buy, Stripe Checkout and the billing portal, and an admin's
plan assignment.

Billing is on when ``STRIPE_SECRET_KEY`` and ``STRIPE_WEBHOOK_SECRET`` are both set; off, the
Stripe operations raise :class:`BillingDisabled` and plans are only assigned by an admin
(:func:`assign_plan`). Stripe's answers come back through the webhook
(:mod:`bestchat.services.stripe_events`), which writes the user's :class:`Subscription`.
The secret key is handed to the Stripe client per call and never logged or returned; a
failure to reach Stripe is logged without Stripe's text and answered as ``billing_unavailable``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import select

from bestchat.errors import Conflict, Invalid, NotFound, Unavailable
from bestchat.extensions import db
from bestchat.models import Plan, Subscription, User
from bestchat.models.base import isoformat
from bestchat.models.limits import LIMIT_KINDS
from bestchat.services import audit, limits, plans
from bestchat.validation import parse_uuid

if TYPE_CHECKING:
    import stripe  # imported where Stripe is called: a server with billing off never loads it

log = logging.getLogger(__name__)

# Seconds a call to Stripe may take; one retry on a network error (Stripe's requests are
# idempotent on retry).
STRIPE_TIMEOUT = 20
STRIPE_RETRIES = 1

SOURCE_STRIPE = "stripe"
SOURCE_ADMIN = "admin"


class BillingDisabled(NotFound):
    """Billing is off on this server: nothing is sold through Stripe."""

    def __init__(self) -> None:
        super().__init__(code="billing_disabled",
                         message="billing is not enabled on this server; plans are assigned by an administrator")


def enabled() -> bool:
    config = current_app.config
    return bool(config.get("STRIPE_SECRET_KEY")) and bool(config.get("STRIPE_WEBHOOK_SECRET"))


def require_enabled() -> None:
    if not enabled():
        raise BillingDisabled()


def client() -> stripe.StripeClient:
    """A Stripe client with the configured key and address (``STRIPE_API_BASE``)."""
    import stripe  # noqa: PLC0415 - see the imports

    config = current_app.config
    base = config.get("STRIPE_API_BASE")
    return stripe.StripeClient(
        config["STRIPE_SECRET_KEY"], base_addresses={"api": base.rstrip("/")} if base else None,
        max_network_retries=STRIPE_RETRIES, http_client=_http_client())


_http: stripe.HTTPClient | None = None


def _http_client() -> stripe.HTTPClient:
    """One HTTP client per process (its connections are kept per thread), holding no key."""
    import stripe  # noqa: PLC0415 - see the imports

    global _http
    if _http is None:
        _http = stripe.RequestsClient(timeout=STRIPE_TIMEOUT)
    return _http


# ---- what a user sees -----------------------------------------------------------------------

def limits_of(plan: Plan) -> dict[str, Any]:
    """The plan's limits by kind (None: no limit set by the plan); cost as float USD."""
    values = {}
    for kind in LIMIT_KINDS:
        value = getattr(plan, f"limit_{kind}")
        values[kind] = float(value) if kind == "cost_per_month" and value is not None else value
    return values


def overview(user: User) -> dict:
    """``GET /api/v1/billing``: whether billing is on, the user's plan and subscription, and
    the active plans (which can be bought, which is the user's)."""
    on = enabled()
    current = plans.plan_summary(user.id)
    subscription = plans.subscription_of(user.id)
    active = db.session.scalars(select(Plan).where(Plan.active.is_(True))
                                .order_by(Plan.price_cents, Plan.name)).all()
    return {
        "enabled": on,
        "plan": current,
        "subscription": None if subscription is None else {
            "status": subscription.status,
            "current_period_end": isoformat(subscription.current_period_end),
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "source": subscription.source,
        },
        "plans": [{
            "id": str(plan.id), "name": plan.name, "description": plan.description,
            "price_cents": plan.price_cents, "purchasable": on and bool(plan.stripe_price_id),
            "current": current is not None and current["id"] == str(plan.id),
            "limits": limits_of(plan),
        } for plan in active],
    }


# ---- Checkout and the billing portal --------------------------------------------------------

def start_checkout(user: User, plan_id: uuid.UUID, base_url: str) -> str:
    """A Stripe Checkout session for ``plan_id`` (a subscription); returns its URL. The plan
    must be active and have a Stripe price; a user already paying through Stripe changes plan
    in the billing portal instead (409 ``already_subscribed``), so nobody pays twice."""
    require_enabled()
    plan = db.session.get(Plan, plan_id)
    if plan is None or not plan.active:
        raise NotFound("plan")
    if not plan.stripe_price_id:
        raise Conflict("not_purchasable", f"plan {plan.name} is not sold online; an administrator assigns it")
    subscription = plans.subscription_of(user.id)
    if (subscription is not None and subscription.source == SOURCE_STRIPE and subscription.stripe_subscription_id
            and subscription.status in plans.GRANTING):
        raise Conflict("already_subscribed", "you already have a paid subscription; change it in the billing portal")
    metadata = {"user_id": str(user.id), "plan_id": str(plan.id)}
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        "client_reference_id": str(user.id),
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": f"{base_url}/plan?checkout=success",
        "cancel_url": f"{base_url}/plan?checkout=cancelled",
    }
    if subscription is not None and subscription.stripe_customer_id:
        params["customer"] = subscription.stripe_customer_id
    else:
        params["customer_email"] = user.email
    session = _call("checkout", lambda c: c.v1.checkout.sessions.create(params=params))
    audit.record("billing.checkout", user.id, "plan", plan.id, session=session.id)
    db.session.commit()
    return session.url


def open_portal(user: User, base_url: str) -> str:
    """A Stripe billing portal session for the user's Stripe customer; returns its URL.
    409 ``no_customer`` for a user who never went through Checkout."""
    require_enabled()
    subscription = plans.subscription_of(user.id)
    if subscription is None or not subscription.stripe_customer_id:
        raise Conflict("no_customer", "you have no billing account yet: buy a plan first")
    customer = subscription.stripe_customer_id
    session = _call("portal", lambda c: c.v1.billing_portal.sessions.create(
        params={"customer": customer, "return_url": f"{base_url}/plan"}))
    audit.record("billing.portal", user.id, "user", user.id)
    db.session.commit()
    return session.url


def _call(what: str, request):
    """Run ``request(client)``; a Stripe failure is logged by kind only (its text may quote the
    request) and raised as 503 ``billing_unavailable``."""
    import stripe  # noqa: PLC0415 - see the imports

    try:
        return request(client())
    except stripe.StripeError as error:
        log.warning("stripe %s request failed: %s (http status %s)", what, type(error).__name__,
                    getattr(error, "http_status", None))
        raise Unavailable("billing_unavailable", "the payment provider could not be reached; try again later") \
            from None


# ---- the admin's assignment -----------------------------------------------------------------

def assign_plan(actor: User, user: User, plan: Plan | None) -> Subscription | None:
    """Put ``user`` on ``plan`` (source ``admin``), or with None take the assigned plan away (the
    user falls back to the default plan). Works with billing on or off; Stripe's ids stay on the
    row so the user keeps their billing portal. Audit-logged; the limits cache is told."""
    subscription = plans.subscription_of(user.id)
    before = None if subscription is None else str(subscription.plan_id)
    if plan is not None:
        if subscription is None:
            subscription = Subscription(user_id=user.id, plan_id=plan.id)
            db.session.add(subscription)
        subscription.plan_id = plan.id
        subscription.status = "active"
        subscription.source = SOURCE_ADMIN
        subscription.cancel_at_period_end = False
    elif subscription is not None:
        if subscription.stripe_customer_id:
            subscription.status = "canceled"
            subscription.source = SOURCE_ADMIN
        else:
            db.session.delete(subscription)
            subscription = None
    audit.record("billing.plan_assigned", actor.id, "user", user.id, before=before,
                 plan=None if plan is None else str(plan.id), plan_name=None if plan is None else plan.name)
    db.session.commit()
    limits_changed(user.id)
    return subscription


def limits_changed(user_id: uuid.UUID) -> None:
    """Tell the limits cache that the user's plan changed."""
    limits.invalidate(user_id)


# ---- plans (the admin console) --------------------------------------------------------------

def list_plans() -> list[tuple[Plan, int]]:
    """Every plan with its number of subscriptions that grant it, active plans first."""
    rows = db.session.scalars(select(Plan).order_by(Plan.active.desc(), Plan.price_cents, Plan.name)).all()
    counts = dict(db.session.execute(
        select(Subscription.plan_id, db.func.count()).where(Subscription.status.in_(plans.GRANTING))
        .group_by(Subscription.plan_id)).all())
    return [(plan, counts.get(plan.id, 0)) for plan in rows]


def get_plan(plan_id: Any) -> Plan:
    plan = db.session.get(Plan, parse_uuid(plan_id, "plan"))
    if plan is None:
        raise NotFound("plan")
    return plan


PLAN_FIELDS = ("name", "description", "stripe_price_id", "price_cents", "active", "is_default",
               *(f"limit_{kind}" for kind in LIMIT_KINDS))


def save_plan(actor: User, plan: Plan | None, values: dict[str, Any]) -> Plan:
    """Create (``plan`` None) or update a plan from checked ``values`` (every field of
    :data:`PLAN_FIELDS`). The name is unique; a default plan must be active and is the only one.
    Audit-logged; every user's limits are re-read."""
    name = values["name"]
    if not name:
        raise Invalid("name_required", "a plan needs a name")
    clash = db.session.scalar(select(Plan).where(Plan.name == name))
    if clash is not None and clash is not plan:
        raise Conflict("name_taken", f"a plan named {name} already exists")
    if values["is_default"] and not values["active"]:
        raise Invalid("default_inactive", "the default plan must be active")
    created = plan is None
    if created:
        plan = Plan()
        db.session.add(plan)
    for key in PLAN_FIELDS:
        setattr(plan, key, values[key])
    db.session.flush()
    if plan.is_default:
        for other in db.session.scalars(select(Plan).where(Plan.is_default.is_(True), Plan.id != plan.id)):
            other.is_default = False
    audit.record("plan.created" if created else "plan.updated", actor.id, "plan", plan.id, name=plan.name,
                 stripe_price_id=plan.stripe_price_id, active=plan.active, is_default=plan.is_default,
                 limits={k: (None if v is None else str(v)) for k, v in limits_of(plan).items()})
    db.session.commit()
    limits_changed(None)
    return plan
