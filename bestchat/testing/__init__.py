"""Testing support shipped with BestChat, for its own tests and for plugin authors'
(``pip install bestchat[test]``; the guide is ``docs/plugin-testing.md``):

- pytest fixtures (``app``, ``app_config``, ``client``, ``user``, ``runner``, ``backend``,
  ``fake_openai``), a ``pytest11`` plugin: :mod:`bestchat.testing.pytest_plugin`;
- :func:`plugin_registered`, :func:`write_distribution` and :func:`unload_plugins`
  (:mod:`bestchat.testing.plugins`);
- :func:`send_and_wait`, :func:`wait_for_answer` and :func:`add_provider`
  (:mod:`bestchat.testing.chat`);
- :class:`FakeOpenAI` and its :class:`Script` (:mod:`bestchat.testing.fake_openai`);
- :class:`Client` and :func:`assert_error` (:mod:`bestchat.testing.client`);
- :mod:`bestchat.testing.context`: checks for context strategies.

``from bestchat.testing import send_and_wait`` imports only what that name needs (PEP 562
``__getattr__``): ``python -m bestchat.testing.fake_openai`` stays free of the web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module it lives in.
_SOURCES = {
    "send_and_wait": "bestchat.testing.chat", "wait_for_answer": "bestchat.testing.chat",
    "add_provider": "bestchat.testing.chat",
    "plugin_registered": "bestchat.testing.plugins", "write_distribution": "bestchat.testing.plugins",
    "unload_plugins": "bestchat.testing.plugins",
    "FakeOpenAI": "bestchat.testing.fake_openai", "Script": "bestchat.testing.fake_openai",
    "Client": "bestchat.testing.client", "assert_error": "bestchat.testing.client",
}

__all__ = ["Client", "FakeOpenAI", "Script", "add_provider", "assert_error", "plugin_registered", "send_and_wait",
           "unload_plugins", "wait_for_answer", "write_distribution"]


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use."""
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from bestchat.testing.chat import add_provider, send_and_wait, wait_for_answer
    from bestchat.testing.client import Client, assert_error
    from bestchat.testing.fake_openai import FakeOpenAI, Script
    from bestchat.testing.plugins import plugin_registered, unload_plugins, write_distribution
