"""Test helpers for plugins: register a plugin for the length of a ``with`` block, whether or
not it is installed, and write an installed-looking distribution to disk to test discovery
through entry points."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from bestchat import plugins as registry
from bestchat.plugins import ENTRY_POINT_GROUP


@contextmanager
def plugin_registered(plugin: object, name: str = "test-plugin") -> Iterator[dict[str, Any]]:
    """Register ``plugin`` (a module or an object with hook implementations) under ``name`` for
    the length of the ``with`` block; yields its record, as ``get_plugins()`` lists it
    (``status`` tells whether it loaded, ``error`` why not). Create the app first (the ``app``
    fixture does).

    It works whether or not the plugin is installed:

    - nothing is registered under ``name``: ``plugin`` is registered, and unregistered (with
      everything it registered) on exit, even when the block raises;
    - ``plugin`` itself is registered under ``name`` (the plugin is installed and its entry point
      loaded this very module): its record is yielded and it stays registered;
    - another object is registered under ``name`` (an installed copy of another version, another
      test's plugin), or ``plugin`` is registered under another name: those are set aside for the
      block, ``plugin`` is registered under ``name``, and on exit they come back as they were.
    """
    if registry.get_plugin_manager().get_plugin(name) is plugin:
        yield next(record for record in registry.get_plugins() if record["name"] == name)
        return
    aside = _set_aside(plugin, name)
    try:
        yield registry.register_plugin(plugin, name)
    finally:
        registry.unregister_plugin(name)
        _put_back(aside)


# Setting a registration aside and putting it back as it was (its version, whether
# register_plugin made it) reaches into bestchat.plugins' loaded state: its public functions
# register without a version.


@dataclass
class _Aside:
    """A registration taken out for a block: its name, object (None if it failed or is
    blocked), record, and the object ``register_plugin`` registered under its name, if any (to
    be registered again when the plugins are reloaded)."""
    name: str
    plugin: object | None
    record: Any
    manual: object | None


def _set_aside(plugin: object, name: str) -> list[_Aside]:
    """Take out what holds ``name`` and any other registration of ``plugin``."""
    state = registry._state()
    names = [n for n in dict.fromkeys([name, state.pm.get_name(plugin)]) if n is not None and n in state.records]
    aside = [_Aside(n, state.pm.get_plugin(n), state.records[n], state.manual.get(n)) for n in names]
    for item in aside:
        registry.unregister_plugin(item.name)
    return aside


def _put_back(aside: list[_Aside]) -> None:
    """Register again what :func:`_set_aside` took out, with its version, unless the plugins
    were reloaded meanwhile (the reload registered the installed ones again)."""
    with registry._lock:
        state = registry._state()
        for item in aside:
            if state.pm.get_plugin(item.name) is not None or item.name in state.records:
                continue
            if item.plugin is None:
                state.records[item.name] = item.record
            else:
                state.register(item.plugin, item.name, item.record.version)
            if item.manual is not None:
                state.manual[item.name] = item.manual


def write_distribution(directory: Path, name: str, module: str, source: str, version: str = "0.1") -> Path:
    """Write distribution ``name`` (a ``.dist-info`` with METADATA and entry_points.txt) whose
    ``bestchat`` entry point is ``module``, plus ``module.py`` holding ``source``.

    Put ``directory`` on ``sys.path`` (``monkeypatch.syspath_prepend``) and call
    :func:`unload_plugins` for the next app to discover it.
    """
    dist_info = directory / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{module} = {module}\n")
    (directory / f"{module}.py").write_text(source)
    return dist_info


def unload_plugins() -> None:
    """Forget the loaded plugins: the next app created (the ``app`` fixture's) discovers the
    installed ones again. Call it after :func:`write_distribution`, and again when the test
    ends (its distribution is gone)."""
    registry.unload_plugins()
