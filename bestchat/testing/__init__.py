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

from typing import TYPE_CHECKING

from bestchat.lazy_exports import lazy_exports

# Module -> the public names that live in it.
_MODULES = {
    "bestchat.testing.chat": ("send_and_wait", "wait_for_answer", "add_provider"),
    "bestchat.testing.plugins": ("plugin_registered", "write_distribution", "unload_plugins"),
    "bestchat.testing.fake_openai": ("FakeOpenAI", "Script"),
    "bestchat.testing.client": ("Client", "assert_error"),
}
_SOURCES = {name: (module, name) for module, names in _MODULES.items() for name in names}

__all__ = ["Client", "FakeOpenAI", "Script", "add_provider", "assert_error", "plugin_registered", "send_and_wait",
           "unload_plugins", "wait_for_answer", "write_distribution"]
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)


if TYPE_CHECKING:
    from bestchat.testing.chat import add_provider, send_and_wait, wait_for_answer
    from bestchat.testing.client import Client, assert_error
    from bestchat.testing.fake_openai import FakeOpenAI, Script
    from bestchat.testing.plugins import plugin_registered, unload_plugins, write_distribution
