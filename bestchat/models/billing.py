"""Plans, users' subscriptions to them (Stripe's or the admin's), and the Stripe webhook
events already applied (each applied once)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin, utcnow
from bestchat.models.limits import LimitColumns


class Plan(LimitColumns, IdMixin, TimestampMixin, Base):
    """A plan defined by the admin: its limits, and the Stripe price a user pays for it
    (None: not sold through Checkout; the admin assigns it). The ``is_default`` plan (at most
    one) applies to users with no subscription."""

    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    stripe_price_id: Mapped[str | None] = mapped_column(String(100))
    # What the plan page shows as its price (Stripe's price is what is charged).
    price_cents: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    is_default: Mapped[bool] = mapped_column(default=False)


class Subscription(IdMixin, TimestampMixin, Base):
    """A user's plan: one row per user, written by the Stripe webhook (``source`` stripe) or
    by an admin (``source`` admin). ``status`` is Stripe's subscription status (active,
    trialing, past_due, canceled, ...); ``last_event_at`` is the ``created`` time of the last
    Stripe event applied, so an older event arriving late changes nothing."""

    __tablename__ = "subscriptions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True, index=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(32), default="active")
    source: Mapped[str] = mapped_column(String(16), default="admin")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(100), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(100), index=True)
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    last_event_at: Mapped[int | None] = mapped_column(default=None)


class StripeEvent(Base):
    """A Stripe webhook event already applied (or deliberately ignored): a replay of its id
    changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
