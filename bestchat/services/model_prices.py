"""The prices the admin sets per model, and the console's overview of what every model costs.

An admin price (USD per million prompt, completion and cached prompt tokens) wins over the
provider plugin's price and litellm's model map (:mod:`bestchat.services.pricing`). Setting one
does not touch usage already recorded; :func:`reprice_unknown` prices this model's rows that were
stored with an unknown cost. Every change is in the audit log and, once committed, read again by
every process (:func:`bestchat.services.pricing.changed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import case, func, select, update

from bestchat.errors import Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import ModelPrice, UsageLog, User
from bestchat.services import audit, pricing
from bestchat.services.pricing import Price
from bestchat.validation import parse_uuid

# The largest price accepted, in USD per million tokens (the column holds 8 digits before the point).
MAX_PER_MILLION = Decimal(10_000_000)
PLACES = Decimal("0.000001")
REPRICE_BATCH = 500


@dataclass(frozen=True)
class ModelLine:
    """A model of the Prices page: its usage (requests are usage rows, one per model round),
    those stored with an unknown cost and their tokens, the price in effect now (None:
    unknown) and the admin's row when there is one."""

    provider: str
    model: str
    requests: int = 0
    unpriced_requests: int = 0
    unpriced_tokens: int = 0
    price: Price | None = None
    admin_price: ModelPrice | None = None


def overview() -> list[ModelLine]:
    """Every model seen in usage or priced by the admin: those with usage of unknown cost
    first (the most such tokens first), then by provider and model."""
    unknown = UsageLog.cost.is_(None)
    seen = db.session.execute(
        select(UsageLog.provider, UsageLog.model, func.count(),
               func.coalesce(func.sum(case((unknown, 1), else_=0)), 0),
               func.coalesce(func.sum(case((unknown, UsageLog.prompt_tokens + UsageLog.completion_tokens),
                                           else_=0)), 0))
        .group_by(UsageLog.provider, UsageLog.model)).all()
    admin_rows = {(row.provider, row.model): row for row in db.session.scalars(select(ModelPrice))}
    keys = {(provider, model) for provider, model, *_ in seen} | set(admin_rows)
    usage = {(provider, model): (int(n), int(u), int(t)) for provider, model, n, u, t in seen}
    lines = [ModelLine(provider, model, *usage.get((provider, model), (0, 0, 0)),
                       price=pricing.resolve(provider, model), admin_price=admin_rows.get((provider, model)))
             for provider, model in keys]
    return sorted(lines, key=lambda line: (line.unpriced_requests == 0, -line.unpriced_tokens,
                                           line.provider, line.model))


def parse_amount(raw: Any, label: str, *, required: bool = True) -> Decimal | None:
    """A price typed in a form (USD per million tokens): a number from 0 to
    :data:`MAX_PER_MILLION`, kept to six decimals; empty is None unless ``required``."""
    text = str(raw if raw is not None else "").strip().replace(",", "").lstrip("$")
    if not text:
        if required:
            raise Invalid("missing_field", f"the {label} price is required")
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid("invalid_field", f"the {label} price must be a number of dollars") from None
    if not value.is_finite() or value < 0:
        raise Invalid("invalid_field", f"the {label} price must be zero or more")
    if value > MAX_PER_MILLION:
        raise Invalid("invalid_field", f"the {label} price must be at most ${MAX_PER_MILLION:,} per million tokens")
    return value.quantize(PLACES)


def _name(raw: Any, label: str, limit: int) -> str:
    value = str(raw or "").strip()
    if not value:
        raise Invalid("missing_field", f"the {label} is required")
    if len(value) > limit:
        raise Invalid("invalid_field", f"the {label} is longer than {limit} characters")
    return value


def set_price(actor: User, *, provider: Any, model: Any, input_per_million: Any, output_per_million: Any,
              cached_input_per_million: Any = None) -> ModelPrice:
    """Create or replace the admin's price of ``provider``/``model`` (checked first:
    :class:`Invalid`, nothing stored)."""
    values = {
        "provider": _name(provider, "provider", 100),
        "model": _name(model, "model", 200),
        "input_per_million": parse_amount(input_per_million, "input"),
        "output_per_million": parse_amount(output_per_million, "output"),
        "cached_input_per_million": parse_amount(cached_input_per_million, "cached input", required=False),
    }
    row = db.session.scalar(select(ModelPrice).where(ModelPrice.provider == values["provider"],
                                                     ModelPrice.model == values["model"]))
    action = "price.updated" if row is not None else "price.created"
    if row is None:
        row = ModelPrice(**values)
        db.session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    row.updated_by = actor.id
    db.session.flush()
    audit.record(action, actor.id, "model_price", row.id, **_summary(row))
    db.session.commit()
    pricing.changed()
    return row


def get_price(price_id: Any) -> ModelPrice:
    """The admin price ``price_id``; :class:`NotFound` for an unknown or malformed id."""
    row = db.session.get(ModelPrice, parse_uuid(price_id, "price"))
    if row is None:
        raise NotFound("price")
    return row


def delete_price(actor: User, row: ModelPrice) -> None:
    """Remove the admin's price: the provider's or the model map's applies again."""
    audit.record("price.deleted", actor.id, "model_price", row.id, **_summary(row))
    db.session.delete(row)
    db.session.commit()
    pricing.changed()


def unpriced_requests(provider: str, model: str) -> int:
    """How many usage rows of this model were stored with an unknown cost."""
    return db.session.scalar(select(func.count()).select_from(UsageLog).where(
        UsageLog.provider == provider, UsageLog.model == model, UsageLog.cost.is_(None))) or 0


def reprice_unknown(actor: User, row: ModelPrice) -> int:
    """Price this model's usage rows stored with an unknown cost at the admin's price ``row``;
    the number of rows priced. Rows with a known cost keep it."""
    price = Price(row.input_per_million, row.output_per_million, row.cached_input_per_million, pricing.ADMIN)
    query = (select(UsageLog.id, UsageLog.prompt_tokens, UsageLog.completion_tokens, UsageLog.cached_tokens)
             .where(UsageLog.provider == row.provider, UsageLog.model == row.model, UsageLog.cost.is_(None))
             .order_by(UsageLog.id))
    found = db.session.execute(query).all()
    for start in range(0, len(found), REPRICE_BATCH):
        db.session.execute(update(UsageLog), [
            {"id": key, "cost": pricing.cost_of(price, prompt, completion, cached or 0),
             "price_source": pricing.ADMIN}
            for key, prompt, completion, cached in found[start:start + REPRICE_BATCH]])
    audit.record("price.repriced", actor.id, "model_price", row.id, provider=row.provider, model=row.model,
                 rows=len(found))
    db.session.commit()
    return len(found)


def _summary(row: ModelPrice) -> dict[str, Any]:
    def text(value: Decimal | None) -> str | None:
        return None if value is None else format(value.normalize(), "f")

    return {"provider": row.provider, "model": row.model, "input_per_million": text(row.input_per_million),
            "output_per_million": text(row.output_per_million),
            "cached_input_per_million": text(row.cached_input_per_million)}
