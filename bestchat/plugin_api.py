"""The public API for plugin authors: everything a plugin needs, from one import.

``from bestchat.plugin_api import hookimpl, Provider, TextDelta, Finish`` (or ``import
bestchat.plugin_api as bc``). What is named here is the supported surface: it keeps its names
and meaning across minor releases, while the modules it comes from are internal and may move.
The first-party plugins in ``plugins/`` import nothing else from ``bestchat`` (a test enforces
it), and their tests import only this module and :mod:`bestchat.testing`.

What it holds, by what a plugin does (the reference is ``docs/plugins.md``):

- **Hooks**: :data:`hookimpl` marks a module-level function as a hook implementation; the hooks
  are declared in ``bestchat.hookspecs``.
- **Providers**: the :class:`Provider` base class, the :class:`ProviderOptions` base of a
  provider's ``Options``, :class:`ProviderSettings` (what a configured provider is built with),
  :class:`ModelInfo`, :class:`Price` (what :meth:`Provider.price` returns); the events a provider yields (:class:`TextDelta`, :class:`ToolCall`,
  :class:`Usage`, :class:`Finish`); the errors it raises (:class:`ProviderError` and its
  subclasses, with ``code`` and ``retryable``).
- **HTTP helpers providers share**: :func:`error_for_status` and :func:`with_detail` (an
  upstream's HTTP error as the right :class:`ProviderError`), :func:`redact_key` (a key out of a
  text), :class:`OutboundPolicy` and :class:`OutboundRefused` (the address policy every
  connection to a configured address goes through: ``self.outbound``), :func:`list_models` and
  :func:`proxied` (``GET /models`` through the policy, for ``discover_models``), and
  :class:`ToolCallAssembler` (OpenAI-style streamed tool-call fragments into whole calls).
- **Tools**: :class:`Tool`, the :func:`tool` decorator, :func:`tool_context` (inside a running
  tool: the settings the server hands it, e.g. its outbound rules).
- **Context strategies**: :class:`ContextStrategy`, :class:`Situation`, :class:`Item`,
  :class:`FilePiece`, :class:`Summary`, :class:`SummaryUnavailable`, :class:`Fitted`,
  :func:`total`, and the fitting helpers the built-in strategies use (:func:`keep_newest`,
  :func:`newest_fitting`, :func:`units`, :func:`message_tokens`, :func:`note_tokens`,
  :func:`summary_tokens`).
- **What is registered**: :func:`get_providers`, :func:`get_tools`,
  :func:`get_context_strategies` (in a running app or a test's ``app``).
- **Admin views**: :class:`SecureView` and :class:`SecureModelView` (the console's access rule
  and CSRF check).

Every name is imported on first use (PEP 562 ``__getattr__``): a tool's module runs in a fresh
sandboxed process per call, and ``from bestchat.plugin_api import hookimpl, tool`` there costs
only the modules those two names live in, never Flask, Flask-Admin or httpx. Type checkers and
editors read the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bestchat.lazy_exports import lazy_exports

# Public name -> (module, attribute there).
_SOURCES: dict[str, tuple[str, str]] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        public, _, attribute = name.partition("=")
        _SOURCES[public] = (module, attribute or public)


# hooks
_export("bestchat.hookspecs", "hookimpl")
# providers: the base class, options, settings, events and errors
_export("bestchat.providers.base",
        "Provider", "ProviderOptions", "ProviderSettings", "ModelInfo", "MAX_DISCOVERED_MODELS",
        "Event", "TextDelta", "ToolCall", "Usage", "Finish", "Price",
        "ProviderError", "ProviderAuthError", "ProviderRateLimited", "ProviderUnavailable", "ProviderTimeout",
        "ProviderBadRequest", "ProviderAddressRefused")
# HTTP helpers providers share
_export("bestchat.providers.upstream_errors", "error_for_status", "with_detail")
_export("bestchat.redaction", "redact_key")
_export("bestchat.security.outbound", "OutboundPolicy=Policy", "OutboundRules=Rules", "OutboundRefused")
_export("bestchat.providers.discovery", "list_models", "proxied")
_export("bestchat.providers.tool_calls", "ToolCallAssembler")
# tools
_export("bestchat.tools.base", "Tool", "tool")
_export("bestchat.tools.context", "tool_context=get_context")
# context strategies
_export("bestchat.context.base",
        "ContextStrategy", "Situation", "Item", "FilePiece", "ImagePiece", "Summary", "SummaryUnavailable", "Fitted",
        "total")
_export("bestchat.context.fitting",
        "keep_newest", "newest_fitting", "units", "message_tokens", "note_tokens", "summary_tokens")
# what is registered
_export("bestchat.plugins", "get_providers", "get_tools", "get_context_strategies")
# admin views
_export("bestchat.admin.base", "SecureView", "SecureModelView")

__all__ = sorted(_SOURCES)
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from bestchat.admin.base import SecureModelView, SecureView
    from bestchat.context.base import (
        ContextStrategy, FilePiece, Fitted, ImagePiece, Item, Situation, Summary, SummaryUnavailable, total,
    )
    from bestchat.context.fitting import (
        keep_newest, message_tokens, newest_fitting, note_tokens, summary_tokens, units,
    )
    from bestchat.hookspecs import hookimpl
    from bestchat.plugins import get_context_strategies, get_providers, get_tools
    from bestchat.providers.base import (
        MAX_DISCOVERED_MODELS, Event, Finish, ModelInfo, Price, Provider, ProviderAddressRefused, ProviderAuthError,
        ProviderBadRequest, ProviderError, ProviderOptions, ProviderRateLimited, ProviderSettings,
        ProviderTimeout, ProviderUnavailable, TextDelta, ToolCall, Usage,
    )
    from bestchat.providers.discovery import list_models, proxied
    from bestchat.providers.tool_calls import ToolCallAssembler
    from bestchat.providers.upstream_errors import error_for_status, with_detail
    from bestchat.redaction import redact_key
    from bestchat.security.outbound import OutboundRefused
    from bestchat.security.outbound import Policy as OutboundPolicy
    from bestchat.security.outbound import Rules as OutboundRules
    from bestchat.tools.base import Tool, tool
    from bestchat.tools.context import get_context as tool_context
