"""What a model costs, and what a round of an answer cost.

:func:`resolve` finds a model's :class:`Price` (USD per million tokens) in this order: the price
the admin set in the console (a ``model_prices`` row), the provider plugin's own
(:meth:`bestchat.providers.base.Provider.price`), litellm's model map read as data
(:mod:`bestchat.providers.model_map`). None means nobody knows it: a usage row then stores an
unknown cost (NULL), never $0. :func:`round_cost` prices one round of an answer, where a ``cost``
the provider reported in its :class:`~bestchat.providers.base.Usage` counts as the provider's
price.

The admin's prices are read once per process and kept until one changes: every change bumps a
version number in Redis (:func:`changed`, after the change is committed), and a process that
sees another version reads the table again. A reader takes the version before the table, so a
change that lands in between is read again next time, never missed. Without Redis (embedded
mode: one process) the process's copy is dropped directly.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import redis
from flask import current_app
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import ModelPrice
from bestchat.providers import model_map
from bestchat.providers.base import Price, Provider, Usage, as_dollars
from bestchat.redis_client import get_redis

log = logging.getLogger(__name__)

ADMIN, PROVIDER, MODEL_MAP = "admin", "provider", "model_map"
SOURCES = (ADMIN, PROVIDER, MODEL_MAP)
MILLION = Decimal(1_000_000)
_VERSION_KEY = "bestchat:prices:version"
_LOCAL = "bestchat_admin_prices"  # app.extensions: {"version", "prices"}

__all__ = ["ADMIN", "MODEL_MAP", "PROVIDER", "Price", "admin_prices", "changed", "cost_of", "map_price",
           "provider_price", "resolve", "round_cost"]


def resolve(provider_name: str, model: str, *, provider: Provider | None = None) -> Price | None:
    """``model``'s price through ``provider_name``: the admin's, else the provider plugin's,
    else litellm's model map; None when none knows it. ``provider`` is the configured instance
    when the caller has one (else a bare one of the installed class is asked)."""
    return (admin_prices().get((provider_name, model))
            or provider_price(provider_name, model, provider)
            or map_price(model))


def round_cost(provider_name: str, model: str, usage: Usage, *,
               provider: Provider | None = None) -> tuple[Decimal | None, str | None]:
    """What one model round cost and where its price came from; ``(None, None)`` when unknown.
    A ``usage.cost`` the provider reported ranks as the provider's price: below the admin's,
    above the provider's :meth:`~Provider.price` and the model map."""
    admin = admin_prices().get((provider_name, model))
    if admin is None and usage.cost is not None:
        return as_dollars(usage.cost), PROVIDER
    price = admin or provider_price(provider_name, model, provider) or map_price(model)
    if price is None:
        return None, None
    return cost_of(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens), price.source


def cost_of(price: Price, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Decimal:
    """USD for these tokens at ``price``. ``cached_tokens`` are part of ``prompt_tokens`` and
    charged at the cached rate (the input rate when the price has none)."""
    prompt_tokens = max(0, int(prompt_tokens or 0))
    cached = min(max(0, int(cached_tokens or 0)), prompt_tokens)
    cached_rate = price.cached_input_per_million
    if cached_rate is None:
        cached_rate = price.input_per_million
    total = ((prompt_tokens - cached) * price.input_per_million + cached * cached_rate
             + max(0, int(completion_tokens or 0)) * price.output_per_million)
    return total / MILLION


# ---- the three sources ------------------------------------------------------------------------

def admin_prices() -> dict[tuple[str, str], Price]:
    """Every price the admin set, by ``(provider, model)`` (cached, see the module docstring)."""
    app = current_app._get_current_object()
    version = _version()
    cached = app.extensions.get(_LOCAL)
    if cached is not None and version is not False and cached["version"] == version:
        return cached["prices"]
    prices = {(row.provider, row.model): Price(row.input_per_million, row.output_per_million,
                                                row.cached_input_per_million, ADMIN)
              for row in db.session.scalars(select(ModelPrice))}
    if version is not False:
        app.extensions[_LOCAL] = {"version": version, "prices": prices}
    return prices


def changed() -> None:
    """An admin price was set or removed (and committed): every process reads them again."""
    current_app.extensions.pop(_LOCAL, None)
    client = get_redis()
    if client is not None:
        try:
            client.incr(_VERSION_KEY)
        except redis.RedisError:
            log.warning("could not tell other processes that a price changed", exc_info=True)


def _version() -> Any:
    """The prices' version: Redis's counter, None in embedded mode, False when Redis fails
    (then nothing is cached)."""
    client = get_redis()
    if client is None:
        return None
    try:
        return client.get(_VERSION_KEY) or "0"
    except redis.RedisError:
        log.warning("could not read the prices' version; reading the prices", exc_info=True)
        return False


def provider_price(provider_name: str, model: str, provider: Provider | None = None) -> Price | None:
    """The provider plugin's price for ``model`` (None: it does not say, or it failed)."""
    if provider is None:
        from bestchat.providers.registry import provider_classes  # noqa: PLC0415 - registry imports services

        cls = provider_classes().get(provider_name)
        if cls is None:
            return None
        try:
            provider = cls()
        except Exception:  # noqa: BLE001 - a plugin's bug never breaks usage accounting
            log.warning("provider %s could not be built to ask its price", provider_name, exc_info=True)
            return None
    try:
        price = provider.price(model)
    except Exception:  # noqa: BLE001 - as above
        log.warning("provider %s failed to give the price of %s", provider_name, model, exc_info=True)
        return None
    if price is None:
        return None
    if not isinstance(price, Price):
        log.warning("provider %s gave a price that is not a Price: %r", provider_name, price)
        return None
    return Price(price.input_per_million, price.output_per_million, price.cached_input_per_million, PROVIDER)


def map_price(model: str) -> Price | None:
    """litellm's model map's price for ``model`` (it needs both the input and output price)."""
    facts = model_map.lookup(model)
    if facts is None or facts.input_cost_per_token is None or facts.output_cost_per_token is None:
        return None
    cached = facts.cache_read_input_token_cost
    return Price(_per_million(facts.input_cost_per_token), _per_million(facts.output_cost_per_token),
                 None if cached is None else _per_million(cached), MODEL_MAP)


def _per_million(per_token: float) -> Decimal:
    return (as_dollars(per_token) * MILLION).normalize()

