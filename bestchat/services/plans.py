"""Plans and which one a user is on.

A user's plan is the plan of their subscription while its status is one that grants it
(:data:`GRANTING`: active, trialing, past_due), else the default plan (``is_default``), else
none. Subscriptions come from the Stripe webhook or from an admin (``bestchat.services.billing``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Plan, Subscription

# Subscription statuses under which the subscription's plan applies. ``past_due`` keeps the
# plan while Stripe retries the payment; Stripe moves it to unpaid or canceled when it gives up.
GRANTING = ("active", "trialing", "past_due")


def default_plan() -> Plan | None:
    """The plan of users without a subscription (None: no default plan)."""
    return db.session.scalar(select(Plan).where(Plan.is_default.is_(True), Plan.active.is_(True)).limit(1))


def subscription_of(user_id: uuid.UUID) -> Subscription | None:
    return db.session.scalar(select(Subscription).where(Subscription.user_id == user_id))


def plan_of(user_id: uuid.UUID) -> Plan | None:
    """The plan that applies to the user now (see the module docstring)."""
    subscription = subscription_of(user_id)
    if subscription is not None and subscription.status in GRANTING:
        plan = db.session.get(Plan, subscription.plan_id)
        if plan is not None:
            return plan
    return default_plan()


def plan_summary(user_id: uuid.UUID) -> dict[str, Any] | None:
    """The plan that applies to the user as the API shows it: ``{id, name, source, status}``
    (source ``stripe`` or ``admin`` with the subscription's status, ``default`` with status
    active), or None."""
    plan = plan_of(user_id)
    if plan is None:
        return None
    subscription = subscription_of(user_id)
    if subscription is not None and subscription.status in GRANTING and subscription.plan_id == plan.id:
        return {"id": str(plan.id), "name": plan.name, "source": subscription.source, "status": subscription.status}
    return {"id": str(plan.id), "name": plan.name, "source": "default", "status": "active"}
