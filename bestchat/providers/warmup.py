"""Warms the providers in use up in a worker process before it serves
(:meth:`bestchat.providers.base.Provider.warm_up`): heavy imports and tables are loaded at start,
not on a user's first answer.

A provider is in use when an enabled connection names it, or when it needs neither a key nor
a base URL (it is offered to every user without one). The others are not warmed: a worker
whose server has no litellm connection does not carry litellm's few hundred megabytes, and
such a provider, once configured, loads what it needs at its first answer.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from bestchat import plugins
from bestchat.extensions import db
from bestchat.models import ProviderConfig

log = logging.getLogger(__name__)


def providers_in_use() -> set[str]:
    """Names of the registered providers with an enabled connection or needing none."""
    registered = plugins.get_providers()
    configured = set(db.session.scalars(select(ProviderConfig.provider).where(ProviderConfig.enabled).distinct()))
    db.session.remove()
    return {name for name, cls in registered.items()
            if name in configured or not (cls.needs_key or cls.needs_base_url)}


def warm_providers() -> list[str]:
    """Call ``warm_up()`` of every provider in use (needs an app context); returns the names
    of those that raised (each logged and counted as a failure of its plugin)."""
    registered = plugins.get_providers()
    try:
        in_use = providers_in_use()
    except Exception:  # noqa: BLE001 - no database yet: every provider warms at its first answer
        log.warning("could not read the connections; no provider warmed up", exc_info=True)
        return []
    failed = []
    for name in sorted(in_use):
        provider = registered[name]
        try:
            provider.warm_up()
        except Exception:  # noqa: BLE001 - one provider's warm-up must not stop the worker
            log.exception("provider %s (plugin %s): warm_up raised; it warms at its first answer instead",
                          name, provider.plugin)
            plugins.count_failure(provider.plugin)
            failed.append(name)
    return failed
