"""Renders a new plugin package from the templates and writes it into an empty directory.

The templates (``templates/common/`` for every kind, ``templates/<kind>/`` for one kind) are
:class:`string.Template` texts; the placeholders are ``${distribution}``, ``${module}``,
``${ident}``, ``${camel}`` (see :class:`~bestchat.scaffold.names.PluginNames`),
``${description}`` and ``${dependencies}`` (from :data:`KINDS`). Everything is rendered and
checked before the first file is written, so a refusal leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from importlib import metadata, resources
from pathlib import Path
from string import Template

from bestchat.scaffold.names import PluginNames


@dataclass(frozen=True)
class Kind:
    """What differs between kinds besides their templates: the package's one-line description
    (``{ident}`` is the registered name) and its dependencies."""

    description: str
    dependencies: tuple[str, ...] = ("bestchat",)


KINDS: dict[str, Kind] = {
    # (pydantic comes with bestchat; the provider's module imports it for its options' fields)
    "provider": Kind("A BestChat provider plugin: model {ident}/echo repeats your message in the style you choose",
                     ("bestchat", "pydantic>=2")),
    "tool": Kind("A BestChat tool plugin: the {ident} tool counts the words, lines or characters of a text"),
    "context": Kind("A BestChat context strategy plugin: {ident} keeps a long conversation's first turn "
                    "and its newest turns"),
}

# (template, file written); ``{kind}`` and ``{module}`` are filled in.
FILES: tuple[tuple[str, str], ...] = (
    ("common/pyproject.toml.tmpl", "pyproject.toml"),
    ("common/gitignore.tmpl", ".gitignore"),
    ("{kind}/README.md.tmpl", "README.md"),
    ("{kind}/module.py.tmpl", "{module}.py"),
    ("{kind}/test_module.py.tmpl", "test_{module}.py"),
)


class ScaffoldRefused(Exception):
    """The package cannot be written there (nothing was written); the message says why."""


def render(kind: str, names: PluginNames) -> dict[str, str]:
    """File name -> text of the package for a plugin of ``kind`` named ``names``."""
    about = KINDS[kind]
    values = {**asdict(names), "description": about.description.format(ident=names.ident),
              "dependencies": ", ".join(json.dumps(requirement) for requirement in about.dependencies)}
    templates = resources.files("bestchat.scaffold") / "templates"
    return {target.format(module=names.module):
            Template(templates.joinpath(source.format(kind=kind)).read_text(encoding="utf-8")).substitute(values)
            for source, target in FILES}


def refusal(names: PluginNames, directory: Path) -> str | None:
    """Why the package of ``names`` may not be written into ``directory``, or None."""
    if directory.exists() and not directory.is_dir():
        return f"{directory} exists and is not a directory"
    if directory.is_dir() and any(directory.iterdir()):
        return f"{directory} exists and is not empty; choose another directory with --directory"
    try:
        installed = metadata.version(names.distribution)
    except metadata.PackageNotFoundError:
        return None
    return (f"a distribution named {names.distribution} ({installed}) is already installed here; "
            "choose another name (installing the new one would replace it)")


def write(kind: str, names: PluginNames, directory: Path) -> list[Path]:
    """Write the package into ``directory`` (created if missing); returns the files written.
    :class:`ScaffoldRefused` when it may not, with nothing written."""
    files = render(kind, names)
    reason = refusal(names, directory)
    if reason:
        raise ScaffoldRefused(reason)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for name, text in files.items():
            path = directory / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError:
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return written
