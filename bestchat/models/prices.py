"""Prices the admin set per model, in USD per million tokens; they win over a provider
plugin's price and litellm's model map (``bestchat.services.pricing``)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bestchat.models.base import Base, IdMixin, TimestampMixin


class ModelPrice(IdMixin, TimestampMixin, Base):
    __tablename__ = "model_prices"
    __table_args__ = (UniqueConstraint("provider", "model", name="uq_model_prices_provider_model"),)

    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    input_per_million: Mapped[Decimal] = mapped_column(Numeric(14, 6))
    output_per_million: Mapped[Decimal] = mapped_column(Numeric(14, 6))
    # Prompt tokens served from the provider's cache (None: charged as input).
    cached_input_per_million: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), default=None)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(default=None)
