"""Test helpers for plugins: register a plugin for the length of a ``with`` block, and write
an installed-looking distribution to disk to test discovery through entry points."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bestchat.plugins import ENTRY_POINT_GROUP, register_plugin, unregister_plugin


@contextmanager
def plugin_registered(plugin: object, name: str = "test-plugin") -> Iterator[dict[str, Any]]:
    """Register ``plugin`` in the loaded plugins (create the app first); yields its record
    (``status`` tells whether it loaded) and always unregisters it on exit."""
    record = register_plugin(plugin, name)
    try:
        yield record
    finally:
        unregister_plugin(name)


def write_distribution(directory: Path, name: str, module: str, source: str, version: str = "0.1") -> Path:
    """Write distribution ``name`` (a ``.dist-info`` with METADATA and entry_points.txt) whose
    ``bestchat`` entry point is ``module``, plus ``module.py`` holding ``source``.

    Put ``directory`` on ``sys.path`` (``monkeypatch.syspath_prepend``) and call
    ``bestchat.plugins.unload_plugins()`` for the next app to discover it.
    """
    dist_info = directory / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{module} = {module}\n")
    (directory / f"{module}.py").write_text(source)
    return dist_info
