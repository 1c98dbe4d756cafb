"""Loads plugins and holds what they registered: one pluggy ``PluginManager`` per process.

``load_plugins(app)`` is called by ``create_app()`` (so the web server and the Celery worker
build the same registry); it is idempotent and loads once per process, again only when a later
app asks for different plugin settings (tests do). Plugins come from the ``bestchat``
entry-point group, trusted ones first, so a third-party plugin cannot take a built-in name.

Settings (``config/defaults.py``, or ``BESTCHAT_*`` variables):

- ``LOAD_PLUGINS``: comma-separated allow-list of distribution names; None loads all, "" none.
- ``SAFE_MODE``: load only the trusted plugins.
- ``TRUSTED_PLUGINS``: the distributions SAFE_MODE loads (default :data:`FIRST_PARTY`).
- ``BLOCK_PLUGINS``: comma-separated names never imported nor registered.
- ``BLOCKED_PLUGINS``: names an admin blocked in the console (a site setting,
  :mod:`bestchat.services.site_settings`); blocked the same way, and lifted without a restart.
- ``TRACE_PLUGINS``: log every hook call (``pm.add_hookcall_monitoring``).

Names in these lists are compared in their PEP 503 normalized form (:func:`normalize_name`:
``BestChat_Demo`` is ``bestchat-demo``); a distribution name covers each of its entry points
(plugins named ``<distribution>:<entry point>``). A name that matches no plugin found is
logged as a warning at load and listed by :func:`setting_warnings`.

Blocking or unblocking at runtime changes the app's ``BLOCKED_PLUGINS`` and calls
``load_plugins(app)`` again: the registry is rebuilt with the new settings (plugins registered
with :func:`register_plugin` are registered again), so a blocked plugin's providers, tools,
strategies and message filters are gone at once. Blueprints cannot leave a running Flask app:
:func:`run_register_blueprints` and :func:`run_register_admin_views` note which blueprints each
plugin added, and :func:`blueprint_blocked` tells the app's ``before_request`` gate to answer
404 for those of a plugin that is blocked now.

Failures are counted per plugin since the process started (:func:`failure_counts`): every
hook call that raised, and each failure of a plugin's provider, tool or context strategy that
the core catches (:func:`count_failure`). With Redis configured each one is also added to the
hash ``bestchat:plugin_failures``, the total over every web and worker process.

A plugin that fails to import, implements an unknown hook or raises in a ``register_*`` hook is
recorded as failed (with the error text), unregistered, and its registrations are dropped; the
server keeps running. A hook called later (blueprints, admin views, message filters) that
raises is logged and skipped for that call. Both hold for any exception, ``SystemExit`` (a
plugin calling ``sys.exit()``) included; only ``KeyboardInterrupt`` and the exceptions that
close a generator or a greenlet pass through (:data:`NOT_PLUGIN_FAILURES`). A plugin with no
``@hookimpl`` function loads with a warning naming the functions that look like undecorated
hooks.

The ``register_*`` hooks are historic: they are called once with this module's ``register``
callbacks and replayed for every plugin registered afterwards, while :func:`register_plugin`
tells the callbacks which plugin is registering (the name stamped on what it registers).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import pluggy
from flask import Flask
from greenlet import GreenletExit

from bestchat import hookspecs
from bestchat.context.base import ContextStrategy
from bestchat.providers.base import Provider
from bestchat.tools.base import Tool

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bestchat"
# Distributions shipped in this repository's plugins/ directory: TRUSTED_PLUGINS when the
# settings name none (config/defaults.py lists the same).
FIRST_PARTY = frozenset({"bestchat-demo", "bestchat-openai", "bestchat-litellm", "bestchat-tools",
                         "bestchat-context"})
# Raised through plugin code by the process itself (Ctrl-C, a generator or greenlet being
# closed), never a plugin's failure: they propagate. Every other exception is isolated.
NOT_PLUGIN_FAILURES: tuple[type[BaseException], ...] = (KeyboardInterrupt, GeneratorExit, GreenletExit)
# The hook names, to tell a function named like a hook but not decorated with @hookimpl.
HOOK_NAMES = frozenset(name for name, value in vars(hookspecs).items() if hasattr(value, "bestchat_spec"))
NO_HOOKS_WARNING = "no hook implementations found: decorate hook functions with @hookimpl"

Status = Literal["loaded", "failed", "blocked"]
# The reason recorded for a plugin blocked in the admin console.
ADMIN_BLOCKED = "blocked by an admin"
FAILURES_KEY = "bestchat:plugin_failures"
FAILURES_SINCE_KEY = "bestchat:plugin_failures:since"


class PluginError(Exception):
    """A plugin broke the rules of a hook (raised inside it, recorded as its failure)."""


@dataclass(frozen=True)
class PluginSettings:
    """Which plugins to load, read from the app config; every name normalized
    (:func:`normalize_name`)."""

    allow: frozenset[str] | None = None
    safe_mode: bool = False
    block: frozenset[str] = frozenset()
    trace: bool = False
    # Blocked by an admin (the BLOCKED_PLUGINS site setting); BLOCK_PLUGINS wins over it.
    runtime_block: frozenset[str] = frozenset()
    trusted: frozenset[str] = FIRST_PARTY

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PluginSettings:
        allow, trusted = config.get("LOAD_PLUGINS"), config.get("TRUSTED_PLUGINS")
        return cls(
            allow=None if allow is None else _names(allow),
            safe_mode=bool(config.get("SAFE_MODE")),
            block=_names(config.get("BLOCK_PLUGINS") or ""),
            trace=bool(config.get("TRACE_PLUGINS")),
            runtime_block=_names(config.get("BLOCKED_PLUGINS") or ""),
            trusted=FIRST_PARTY if trusted is None else _names(trusted),
        )

    def blocked(self, name: str) -> str | None:
        """Why the plugin ``name`` is blocked (BLOCK_PLUGINS or the console), or None."""
        if self.blocked_by_environment(name):
            return "blocked by BLOCK_PLUGINS"
        if self.blocked_by_admin(name):
            return ADMIN_BLOCKED
        return None

    def exclusion(self, name: str) -> str | None:
        """Why the installed plugin ``name`` must not be loaded, or None."""
        if reason := self.blocked(name):
            return reason
        if self.safe_mode and not self.is_trusted(name):
            return "not in TRUSTED_PLUGINS: not loaded in SAFE_MODE"
        if self.allow is not None and not _listed(self.allow, name):
            return "not listed in LOAD_PLUGINS"
        return None

    def is_trusted(self, name: str) -> bool:
        return _listed(self.trusted, name)

    def blocked_by_environment(self, name: str) -> bool:
        """Whether BLOCK_PLUGINS names the plugin (the console cannot lift it)."""
        return _listed(self.block, name)

    def blocked_by_admin(self, name: str) -> bool:
        """Whether BLOCKED_PLUGINS (the console's setting) names the plugin."""
        return _listed(self.runtime_block, name)

    def unmatched(self, plugin_names: Iterable[str]) -> list[str]:
        """A warning for each name in LOAD_PLUGINS, BLOCK_PLUGINS and BLOCKED_PLUGINS that
        matches none of ``plugin_names`` (with the closest name when one is close)."""
        known = {normalize_name(name) for name in plugin_names}
        known |= {name.partition(":")[0] for name in known}
        warnings = []
        for setting, names in (("LOAD_PLUGINS", self.allow or ()), ("BLOCK_PLUGINS", self.block),
                               ("BLOCKED_PLUGINS", self.runtime_block)):
            for name in sorted(set(names) - known):
                close = _closest(name, known)
                warnings.append(f"{setting}: {name!r} matches no installed plugin"
                                + (f" (did you mean {close!r}?)" if close else ""))
        return warnings


@dataclass
class PluginRecord:
    """What ``get_plugins()`` reports for one plugin."""

    name: str
    version: str | None
    hooks: list[str]
    status: Status
    error: str | None = None  # why it failed or is blocked
    warnings: list[str] = field(default_factory=list)  # e.g. name clashes it lost


class _Plugins:
    """The manager, the records and the registries of one load."""

    def __init__(self, settings: PluginSettings):
        self.settings = settings
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.providers: dict[str, type[Provider]] = {}
        self.tools: dict[str, Tool] = {}
        self.strategies: dict[str, type[ContextStrategy]] = {}
        # Plugins registered with register_plugin(), by name: registered again on a rebuild.
        self.manual: dict[str, object] = {}
        self._registering: str | None = None
        if settings.trace:
            self.pm.add_hookcall_monitoring(_trace_before, _trace_after)
        hook = self.pm.hook
        hook.register_providers.call_historic(kwargs={"register": self._register_provider})
        hook.register_tools.call_historic(kwargs={"register": self._register_tool})
        hook.register_context_strategies.call_historic(kwargs={"register": self._register_strategy})

    def load_entry_points(self) -> None:
        points = list(entry_points(group=ENTRY_POINT_GROUP))
        per_dist = Counter(_dist_name(point) for point in points)
        points.sort(key=lambda p: (not self.settings.is_trusted(_dist_name(p)), _dist_name(p), p.name))
        for point in points:
            dist = _dist_name(point)
            name = dist if per_dist[dist] == 1 else f"{dist}:{point.name}"
            version = point.dist.version if point.dist else None
            reason = self.settings.exclusion(name)
            if reason:
                self.pm.set_blocked(name)
                self.records[name] = PluginRecord(name, version, [], "blocked", reason)
                continue
            try:
                module = point.load()
            except NOT_PLUGIN_FAILURES:
                raise
            except BaseException as error:  # noqa: BLE001 - any import failure is the plugin's (sys.exit too)
                log.exception("plugin %s failed to import", name)
                self.records[name] = PluginRecord(name, version, [], "failed", _describe(error))
                continue
            self.register(module, name, version)

    def register(self, plugin: object, name: str, version: str | None = None) -> PluginRecord:
        if self.pm.get_plugin(name) is not None:
            raise ValueError(f"a plugin named {name!r} is already registered")
        hooks = self._hook_names(plugin)
        reason = self.settings.blocked(name)
        if reason or self.pm.is_blocked(name):
            previous = self.records.get(name)
            reason = reason or (previous.error if previous else None) or "blocked"
            self.pm.set_blocked(name)
            self.records[name] = PluginRecord(name, version, hooks, "blocked", reason)
            return self.records[name]
        record = self.records[name] = PluginRecord(name, version, hooks, "loaded")
        unknown = [hook for hook in hooks if hook not in HOOK_NAMES]
        self._registering = name
        try:
            if unknown:
                raise PluginError(f"unknown hook(s): {', '.join(unknown)}")
            self.pm.register(plugin, name)
        except NOT_PLUGIN_FAILURES:
            self._drop(name)
            del self.records[name]
            raise
        except BaseException as error:  # noqa: BLE001 - a broken plugin must not stop the server
            log.exception("plugin %s failed to register", name)
            self._drop(name)
            record.status, record.error = "failed", _describe(error)
        finally:
            self._registering = None
        if record.status == "loaded":
            if warning := _undecorated_warning(plugin, hooks):
                log.warning("plugin %s: %s", name, warning)
                record.warnings.append(warning)
        return record

    def unregister(self, name: str) -> None:
        self._drop(name)
        self.records.pop(name, None)
        self.manual.pop(name, None)

    def _drop(self, name: str) -> None:
        """Unregister ``name`` from the manager and remove what it registered."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        for registry in (self.providers, self.tools, self.strategies):
            for key in [key for key, item in registry.items() if item.plugin == name]:
                del registry[key]

    def callers(self, hook_name: str) -> Iterator[tuple[str, Callable[..., list[Any]]]]:
        """(plugin name, a hook caller for that plugin alone) for each plugin implementing
        ``hook_name``, in pluggy's call order (tryfirst/trylast, then latest registered first)."""
        impls = reversed(getattr(self.pm.hook, hook_name).get_hookimpls())
        plugins = self.pm.get_plugins()
        for plugin in dict.fromkeys(impl.plugin for impl in impls):
            others = [other for other in plugins if other is not plugin]
            yield self.pm.get_name(plugin) or repr(plugin), self.pm.subset_hook_caller(hook_name, others)

    def setting_warnings(self) -> list[str]:
        return self.settings.unmatched(list(self.records))

    def _hook_names(self, plugin: object) -> list[str]:
        names = set()
        for attr in dir(plugin):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is not None:
                names.add(opts.get("specname") or attr)
        return sorted(names)

    # ---- the register() callbacks handed to the historic hooks ----

    def _register_provider(self, provider: type[Provider]) -> None:
        if not (isinstance(provider, type) and issubclass(provider, Provider) and provider.name):
            raise TypeError(f"register_providers: expected a Provider subclass with a name, got {provider!r}")
        if self._claim(self.providers, "provider", provider.name):
            provider.plugin = self._current()
            self.providers[provider.name] = provider

    def _register_tool(self, tool: Tool | Callable[..., Any]) -> None:
        if not isinstance(tool, Tool):
            if not callable(tool):
                raise TypeError(f"register_tools: expected a Tool or a function, got {tool!r}")
            tool = Tool.from_function(tool)
        if self._claim(self.tools, "tool", tool.name):
            self.tools[tool.name] = dataclasses.replace(tool, plugin=self._current())

    def _register_strategy(self, strategy: type[ContextStrategy]) -> None:
        if not (isinstance(strategy, type) and issubclass(strategy, ContextStrategy) and strategy.name):
            raise TypeError(
                f"register_context_strategies: expected a ContextStrategy subclass with a name, got {strategy!r}"
            )
        if self._claim(self.strategies, "context strategy", strategy.name):
            strategy.plugin = self._current()
            self.strategies[strategy.name] = strategy

    def _current(self) -> str:
        if self._registering is None:
            raise PluginError("register() called outside plugin registration; use bestchat.plugins.register_plugin")
        return self._registering

    def _claim(self, registry: dict[str, Any], kind: str, name: str) -> bool:
        """True when ``name`` is free; else record the clash on the registering plugin."""
        current = self._current()
        if name not in registry:
            return True
        warning = f"{kind} {name!r} is already registered by {registry[name].plugin}; ignored"
        log.warning("plugin %s: %s", current, warning)
        self.records[current].warnings.append(warning)
        return False


_lock = threading.Lock()
_loaded: _Plugins | None = None


def load_plugins(app: Flask) -> None:
    """Load the plugins once for this process (again only if ``app``'s plugin settings differ)."""
    global _loaded
    settings = PluginSettings.from_config(app.config)
    with _lock:
        if _loaded is not None and _loaded.settings == settings:
            return
        plugins = _Plugins(settings)
        plugins.load_entry_points()
        for name, plugin in (_loaded.manual.items() if _loaded is not None else ()):
            plugins.manual[name] = plugin
            if plugins.pm.get_plugin(name) is None and name not in plugins.records:
                plugins.register(plugin, name)
        _loaded = plugins
    for record in plugins.records.values():
        log.info("plugin %s %s: %s%s", record.name, record.version or "", record.status,
                 f" ({record.error})" if record.error else "")
    for warning in plugins.setting_warnings():
        log.warning("plugin settings: %s", warning)


def unload_plugins() -> None:
    """Forget the loaded plugins: the next ``load_plugins()`` discovers them again."""
    global _loaded
    with _lock:
        _loaded = None


def _state() -> _Plugins:
    if _loaded is None:
        raise RuntimeError("plugins are not loaded: call load_plugins(app) (create_app does)")
    return _loaded


def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager (to inspect hooks; register plugins with register_plugin)."""
    return _state().pm


def register_plugin(plugin: object, name: str) -> dict[str, Any]:
    """Register ``plugin`` (a module or object with hookimpls) now; returns its record.

    Its ``register_*`` hooks run at once. A failing plugin is recorded, not raised.
    """
    with _lock:
        state = _state()
        record = state.register(plugin, name)
        state.manual[name] = plugin
        return asdict(record)


def unregister_plugin(name: str) -> None:
    """Remove the plugin ``name`` and everything it registered."""
    with _lock:
        _state().unregister(name)


def get_plugins() -> list[dict[str, Any]]:
    """Every plugin found: ``{name, version, hooks, status, error, warnings}`` in load order;
    ``status`` is ``loaded``, ``failed`` or ``blocked`` (``error`` says why)."""
    return [asdict(record) for record in _state().records.values()]


def setting_warnings() -> list[str]:
    """Warnings about the plugin settings: each name in LOAD_PLUGINS, BLOCK_PLUGINS or
    BLOCKED_PLUGINS that matches no plugin found (installed or registered)."""
    return _state().setting_warnings()


def get_providers() -> dict[str, type[Provider]]:
    """Provider name -> Provider subclass, from every loaded plugin."""
    return dict(_state().providers)


def get_tools() -> dict[str, Tool]:
    """Tool name -> Tool, from every loaded plugin."""
    return dict(_state().tools)


def get_context_strategies() -> dict[str, type[ContextStrategy]]:
    """Strategy name -> ContextStrategy subclass, from every loaded plugin."""
    return dict(_state().strategies)


def registered_by(name: str) -> dict[str, list[Any]]:
    """What the plugin ``name`` registered, by name: ``providers`` (``{name, default_models}``
    each), ``tools`` and ``strategies``."""
    state = _state()
    return {
        "providers": [{"name": key, "default_models": list(cls.default_models or [])}
                      for key, cls in sorted(state.providers.items()) if cls.plugin == name],
        "tools": sorted(key for key, tool in state.tools.items() if tool.plugin == name),
        "strategies": sorted(key for key, cls in state.strategies.items() if cls.plugin == name),
    }


def blocked_names() -> set[str]:
    """Names of the plugins blocked now (by BLOCK_PLUGINS, the console or the load settings)."""
    return {record.name for record in _state().records.values() if record.status == "blocked"}


# ---- blueprints and admin views of plugins ------------------------------------------------

BLUEPRINTS_KEY = "bestchat_plugin_blueprints"


def run_register_blueprints(app: Flask) -> None:
    """Let every plugin add blueprints to ``app`` (called by ``create_app``), noting which
    blueprints each one added (see :func:`blueprint_blocked`)."""
    _call_all("register_blueprints", app=app, _app=app)


def run_register_admin_views(admin: Any) -> None:
    """Let every plugin add views to the ``flask_admin.Admin`` console (each view is a
    blueprint of the app, noted like those of :func:`run_register_blueprints`)."""
    _call_all("register_admin_views", admin=admin, _app=getattr(admin, "app", None))


def blueprint_blocked(app: Flask, blueprint: str | None) -> bool:
    """Whether ``blueprint`` (a request's ``request.blueprint``) belongs to a plugin that is
    blocked now: its routes answer 404 until the plugin is unblocked."""
    owners: dict[str, str] = app.extensions.get(BLUEPRINTS_KEY) or {}
    if not blueprint or not owners:
        return False
    owner = owners.get(blueprint.partition(".")[0])
    return owner is not None and owner in blocked_names()


def init_blueprint_gate(app: Flask) -> None:
    """Answer 404 for the blueprints of a plugin blocked at runtime (Flask cannot remove a
    blueprint from a running app)."""
    from flask import abort, request

    def gate() -> None:
        if blueprint_blocked(app, request.blueprint):
            abort(404)

    app.before_request(gate)


# ---- failures counted since start ---------------------------------------------------------

_failures: Counter[str] = Counter()
_failures_lock = threading.Lock()
STARTED_AT = time.time()  # when this process started counting


def count_failure(name: str | None) -> None:
    """Count one runtime failure of the plugin ``name`` (a hook that raised, or its provider,
    tool or strategy failing where the core catches it), here and, with Redis, over all
    processes."""
    if not name:
        return
    with _failures_lock:
        _failures[name] += 1
    try:
        from bestchat.redis_client import get_redis  # noqa: PLC0415 - needs an app context

        client = get_redis()
        if client is not None:
            pipe = client.pipeline()
            pipe.hincrby(FAILURES_KEY, name, 1)
            pipe.set(FAILURES_SINCE_KEY, str(time.time()), nx=True)
            pipe.execute()
    except Exception:  # noqa: BLE001 - counting must never add a failure of its own
        log.debug("could not count a failure of plugin %s in Redis", name, exc_info=True)


def failure_counts() -> dict[str, int]:
    """Failures per plugin in this process since :data:`STARTED_AT`."""
    with _failures_lock:
        return dict(_failures)


def total_failure_counts() -> tuple[dict[str, int], float | None] | None:
    """Failures per plugin over every process (from Redis) and since when (the Unix time of
    the first one counted, None before any); None without Redis."""
    from bestchat.redis_client import get_redis  # noqa: PLC0415

    client = get_redis()
    if client is None:
        return None
    pipe = client.pipeline()
    pipe.hgetall(FAILURES_KEY)
    pipe.get(FAILURES_SINCE_KEY)
    counts, since = pipe.execute()
    decoded = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in counts.items()}
    return decoded, float(since) if since else None


def implemented(hook_name: str) -> bool:
    """Whether any enabled plugin implements ``hook_name`` (so a caller can skip preparing
    its arguments)."""
    return bool(getattr(_state().pm.hook, hook_name).get_hookimpls())


def run_before_generate(conversation: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages after every plugin's ``before_generate`` filter, each applied to the
    previous one's result."""
    for name, caller in _state().callers("before_generate"):
        result = _call_isolated(name, "before_generate", caller, conversation=conversation, messages=messages)
        if isinstance(result, list):
            messages = result
        elif result is not None:
            log.error("plugin %s: before_generate returned %s, not a list; ignored", name, type(result).__name__)
    return messages


def run_after_generate(message: Any) -> None:
    """Call every plugin's ``after_generate`` for a finished assistant message."""
    _call_all("after_generate", message=message)


def _call_all(hook_name: str, _app: Flask | None = None, **kwargs: Any) -> None:
    """Call each plugin's ``hook_name``; with ``_app``, note the blueprints each one adds."""
    for name, caller in _state().callers(hook_name):
        before = set(_app.blueprints) if _app is not None else set()
        _call_isolated(name, hook_name, caller, **kwargs)
        if _app is not None:
            owners = _app.extensions.setdefault(BLUEPRINTS_KEY, {})
            for added in set(_app.blueprints) - before:
                owners[added] = name


def _call_isolated(name: str, hook_name: str, caller: Callable[..., list[Any]], **kwargs: Any) -> Any:
    """One plugin's result for a hook (None when it returned None or raised: logged)."""
    try:
        results = caller(**kwargs)
    except NOT_PLUGIN_FAILURES:
        raise
    except BaseException:  # noqa: BLE001 - one plugin's failure must not affect the others
        log.exception("plugin %s: hook %s raised; skipped", name, hook_name)
        count_failure(name)
        return None
    return results[0] if results else None


def normalize_name(name: str) -> str:
    """``name`` as PEP 503 normalizes distribution names: lowercase, each run of ``-``, ``_``
    and ``.`` one ``-`` (``BestChat_Tiny.Stream`` is ``bestchat-tiny-stream``)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def _names(value: str | list[str] | tuple[str, ...]) -> frozenset[str]:
    """The normalized names of a comma-separated string or a list."""
    items = value.split(",") if isinstance(value, str) else value
    return frozenset(normalize_name(str(item)) for item in items if str(item).strip())


def _listed(names: frozenset[str], plugin: str) -> bool:
    """Whether the plugin ``plugin`` (``<distribution>`` or ``<distribution>:<entry point>``)
    is one of the normalized ``names``, by its own name or its distribution's."""
    name = normalize_name(plugin)
    return name in names or name.partition(":")[0] in names


def _closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` probably meant: one it ends (``demo`` for ``bestchat-demo``),
    else a near spelling."""
    known = sorted(known)
    ending = [candidate for candidate in known if candidate.endswith(f"-{name}")]
    close = ending or difflib.get_close_matches(name, known, n=1, cutoff=0.85)
    return close[0] if close else None


def _undecorated_warning(plugin: object, hooks: list[str]) -> str | None:
    """The warning for a plugin with no hook implementation, or with functions named like a
    hook but not decorated with @hookimpl (pluggy never calls them); None when neither."""
    undecorated = sorted(name for name in HOOK_NAMES - set(hooks) if callable(getattr(plugin, name, None)))
    if not hooks:
        return NO_HOOKS_WARNING + (f" (not decorated: {', '.join(undecorated)})" if undecorated else "")
    if undecorated:
        return f"not decorated with @hookimpl, so never called: {', '.join(undecorated)}"
    return None


def _dist_name(point: EntryPoint) -> str:
    """The normalized distribution name (``bestchat-demo``), or the entry point's name."""
    return normalize_name(point.dist.name if point.dist else point.name)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _trace_before(hook_name: str, hook_impls: list[Any], kwargs: Mapping[str, Any]) -> None:
    log.info("hook %s(%s) -> %s", hook_name, ", ".join(kwargs), [impl.plugin_name for impl in hook_impls])


def _trace_after(outcome: Any, hook_name: str, hook_impls: list[Any], kwargs: Mapping[str, Any]) -> None:
    error = outcome.exception
    log.info("hook %s done%s", hook_name, f", raised {_describe(error)}" if error else "")
