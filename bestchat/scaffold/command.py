"""The ``new`` command: ``bestchat plugin new NAME --kind provider|tool|context``, also
``bestchat plugins new``.

It only writes files: no app is built and no database is opened, so it runs from any directory,
before BestChat is configured.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bestchat.scaffold.names import InvalidName, plugin_names
from bestchat.scaffold.writer import KINDS, ScaffoldRefused, write


@click.command("new")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)),
              help="What the plugin registers: a provider (models), a tool, or a context strategy.")
@click.option("--directory", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the package (missing or empty) [default: ./<distribution name>].")
def new_plugin(name: str, kind: str, directory: Path | None) -> None:
    """Write a new plugin package NAME (e.g. bestchat-weather; 'bestchat-' is added when missing):
    pyproject.toml with the entry point, the module, its tests and a README."""
    try:
        names = plugin_names(name)
    except InvalidName as error:
        raise click.BadParameter(str(error), param_hint="NAME") from None
    directory = directory if directory is not None else Path(names.distribution)
    try:
        written = write(kind, names, directory)
    except ScaffoldRefused as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # (what was written is removed again)
        raise click.ClickException(f"cannot write the package into {directory}: {error}") from None
    shown = _shown(directory)
    click.echo(f"Wrote {names.distribution}, a {kind} plugin, in {shown}:")
    for path in written:
        click.echo(f"  {path.name}")
    python = sys.executable or "python"
    click.echo("Next:")
    click.echo("  install it into BestChat's environment, then restart BestChat:")
    # No resolution and no build environment: what it needs is installed already, offline.
    click.echo(f"    {python} -m pip install --no-deps --no-build-isolation -e {shown}")
    click.echo("  run its tests (they need bestchat[test]):")
    click.echo(f"    {python} -m pytest {shown}")
    click.echo(f"  make it yours in {Path(shown) / (names.module + '.py')}: its README.md says where.")


def _shown(directory: Path) -> str:
    """``directory`` as the user would type it: relative to here when it is below here."""
    absolute = directory.resolve()
    try:
        relative = absolute.relative_to(Path.cwd().resolve())
    except ValueError:
        return str(absolute)
    return str(relative)


@click.group("plugin")
def plugin_command() -> None:
    """Start a new plugin (`bestchat plugin new`)."""


plugin_command.add_command(new_plugin)


def add_commands(main: click.Group, plugins_group: click.Group) -> None:
    """Put ``plugin new`` on the console script's group ``main``, and ``new`` into the ``plugins``
    group, which goes on ``main`` too: commands of ``main`` itself are found without building an
    app (those an app adds are found only after building it)."""
    plugins_group.add_command(new_plugin)
    main.add_command(plugin_command)
    main.add_command(plugins_group)
