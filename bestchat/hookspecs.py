"""The plugin API of BestChat: every hook, declared and documented here.

A plugin is a module (or any object) with functions decorated ``@hookimpl`` whose names are
hooks below; it is found through the ``bestchat`` entry-point group (see ``bestchat.plugins``
and ``docs/plugins.md``, which has a section per hook with an example). Plugins import
``hookimpl`` and everything else they use from :mod:`bestchat.plugin_api`. An implementation may
accept any subset of a hook's arguments, so an argument can be added to a hook without breaking
existing plugins; none is ever removed or renamed.

The three ``register_*`` hooks are *historic*: they are called in every process that creates
the app (web, worker, command line) with a ``register`` callback, again whenever the registry
is rebuilt (a plugin blocked or unblocked at runtime), and a plugin registered later still gets
that call. ``register`` checks what it is given, stamps it with the plugin's name and settles
name clashes (the first registration wins; the clash is recorded as a warning on the losing
plugin). A ``register_*`` hook that raises fails its plugin: it is unregistered and what it
registered is dropped. Any other hook that raises is logged, counted as a failure of its plugin
and skipped for that call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pluggy import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    from flask import Flask
    from flask_admin import Admin

    from bestchat.context.base import ContextStrategy
    from bestchat.models import Conversation, Message
    from bestchat.providers.base import Provider
    from bestchat.tools.base import Tool

hookspec = HookspecMarker("bestchat")
hookimpl = HookimplMarker("bestchat")


@hookspec(historic=True)
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register LLM providers: call ``register(ProviderSubclass)`` once per provider.

    :param register: takes a :class:`~bestchat.plugin_api.Provider` subclass with a
        non-empty ``name``; raises ``TypeError`` for anything else.

    Results: return values are ignored; every plugin's registrations are collected into
    ``bestchat.plugins.get_providers()`` (provider name -> class).
    """


@hookspec(historic=True)
def register_tools(register: Callable[[Tool | Callable[..., Any]], None]) -> None:
    """Register tools the model may call: ``register(tool)`` once per tool.

    :param register: takes a :class:`~bestchat.plugin_api.Tool`, or a typed function with a
        docstring (made into a ``Tool`` named after the function; risk ``"low"`` unless the
        :func:`~bestchat.plugin_api.tool` decorator says otherwise). The function runs in a
        sandboxed child process: a module-level function of an importable module, taking the
        JSON arguments as keyword arguments and returning a JSON value.

    Results: return values are ignored; registrations are collected into
    ``bestchat.plugins.get_tools()`` (tool name -> ``Tool``).
    """


@hookspec(historic=True)
def register_context_strategies(register: Callable[[type[ContextStrategy]], None]) -> None:
    """Register strategies that fit long conversations into a model's context window.

    :param register: takes a :class:`~bestchat.plugin_api.ContextStrategy` subclass with a
        non-empty ``name``.

    Results: return values are ignored; registrations are collected into
    ``bestchat.plugins.get_context_strategies()`` (strategy name -> class).
    """


@hookspec
def register_blueprints(app: Flask) -> None:
    """Add routes to the application: call ``app.register_blueprint(bp)``.

    Called once per application by ``create_app()`` (in every process that creates one; only
    web processes serve the routes), after the core blueprints and error handlers, so a plugin
    can add pages and API endpoints (use a URL prefix of its own).

    :param app: the Flask application being created.

    Results: return values are ignored; every plugin is called.
    """


@hookspec
def register_admin_views(admin: Admin) -> None:
    """Add views to the admin console: call ``admin.add_view(view)``.

    Subclass :class:`~bestchat.plugin_api.SecureView` or
    :class:`~bestchat.plugin_api.SecureModelView` so only admins can see the view. Called once
    per application, when ``create_app()`` mounts the console.

    :param admin: the ``flask_admin.Admin`` instance mounted at ``/admin``.

    Results: return values are ignored; every plugin is called.
    """


@hookspec
def before_generate(conversation: Conversation, messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Filter the messages about to be sent to the provider.

    Called where the generation runs (a worker, or the web process in embedded mode), once per
    generation job, after the prompt is fitted into the model's window and before the first
    request to the provider.

    :param conversation: the conversation being answered (read it; do not commit changes).
    :param messages: OpenAI-style ``{"role", "content"}`` dicts, system prompt first.

    Results: return a new list to replace ``messages``, or ``None`` to keep them. Plugins are
    applied in turn, each one receiving the list the previous one returned. A plugin that
    raises is logged and skipped.
    """


@hookspec
def after_generate(message: Message) -> None:
    """React to a finished assistant message (logging, moderation, analytics).

    Called where the generation runs, for answers that complete (status ``complete``), in the
    transaction that saves the answer and before its ``message.completed`` event is sent: keep
    it quick, and do not change or commit the message.

    :param message: the assistant message, with its final content and status.

    Results: return values are ignored; every plugin is called, and one that raises is logged
    and skipped.
    """
