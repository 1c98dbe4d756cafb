"""Warms every registered provider up in a worker process before it serves
(:meth:`bestchat.providers.base.Provider.warm_up`): heavy imports and tables are loaded at start,
not on a user's first answer."""

from __future__ import annotations

import logging

from bestchat import plugins

log = logging.getLogger(__name__)


def warm_providers() -> list[str]:
    """Call ``warm_up()`` of every registered provider class; returns the names of those that
    raised (each logged and counted as a failure of its plugin)."""
    failed = []
    for name, provider in sorted(plugins.get_providers().items()):
        try:
            provider.warm_up()
        except Exception:  # noqa: BLE001 - one provider's warm-up must not stop the worker
            log.exception("provider %s (plugin %s): warm_up raised; it warms at its first answer instead",
                          name, provider.plugin)
            plugins.count_failure(provider.plugin)
            failed.append(name)
    return failed
