"""The ``bestchat`` command line (also ``flask --app wsgi ...``).

``serve`` (gunicorn + gevent), ``worker`` (Celery), ``create-admin``, ``rotate-keys``,
``plugins list``, ``plugin new`` (writes a new plugin package, no app needed) and ``doctor``;
``db upgrade`` comes from Flask-Migrate. Each command calls the service of its area; domain
errors end the command with their message.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from bestchat.errors import DomainError
from bestchat.scaffold.command import add_commands as add_scaffold_commands


def _create_app(*_args, **_kwargs) -> Flask:
    from bestchat import create_app

    return create_app()


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``bestchat --version``: this package's version and the Python running it, no app built."""
    if not value or ctx.resilient_parsing:
        return
    from bestchat import __version__

    click.echo(f"bestchat {__version__} (Python {sys.version.split()[0]})")
    ctx.exit()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def main() -> None:
    """BestChat: self-hosted LLM chat server."""


@click.command("create-admin")
@click.argument("email")
@click.option("--password", help="Password to set; a random one is generated and printed when omitted.")
@click.option("--if-none-exists", is_flag=True, help="Do nothing when an admin account already exists.")
@with_appcontext
def create_admin(email: str, password: str | None, if_none_exists: bool) -> None:
    """Create an admin account (or make an existing account admin, enable it again and reset
    its password)."""
    from bestchat.services import accounts

    if if_none_exists and accounts.admin_count() > 0:
        return
    generated = password is None
    password = password or accounts.generate_password()
    try:
        accounts.make_admin(email, password)
    except DomainError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Admin account: {email}")
    if generated:
        click.echo(f"Password (shown once): {password}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="gunicorn worker processes")
@with_appcontext
def serve(host: str, port: int, workers: int) -> None:
    """Serve the app with gunicorn and gevent workers."""
    if current_app.config["EMBEDDED"] and workers != 1:
        raise click.ClickException(
            "embedded mode (no BESTCHAT_REDIS_URL) serves from one process: its stream bus lives in "
            "that process's memory. Set BESTCHAT_REDIS_URL to run more than one worker."
        )
    mode = "embedded (SQLite, in-process jobs)" if current_app.config["EMBEDDED"] else "redis"
    click.echo(f"BestChat on http://{host}:{port} - mode: {mode}")
    argv = [
        "gunicorn", "--worker-class", "gevent", "--workers", str(workers),
        "--bind", f"{host}:{port}", "--worker-connections", "2000",
        "--graceful-timeout", "10", "--access-logfile", "-",
        # (the access log without ?token= / ?ticket= values: bestchat.accesslog)
        "--logger-class", "bestchat.accesslog.RedactingLogger", "wsgi:app",
    ]
    os.chdir(_repo_root())
    os.execv(_venv_bin("gunicorn"), argv)


@click.command("worker")
@click.option("--concurrency", type=int, help="generations at once (gevent greenlets) [default: WORKER_CONCURRENCY]")
@click.option("--events", is_flag=True, help="send Celery task events (for monitors such as Flower; costs CPU per task)")
@with_appcontext
def worker(concurrency: int | None, events: bool) -> None:
    """Run a Celery worker (gevent pool) for generation jobs; needs BESTCHAT_REDIS_URL."""
    if current_app.config["EMBEDDED"]:
        raise click.ClickException("a Celery worker needs BESTCHAT_REDIS_URL (embedded mode runs jobs in the web process)")
    concurrency = concurrency or int(current_app.config["WORKER_CONCURRENCY"])
    argv = ["celery", "-A", "celery_worker", "worker", "-P", "gevent", "-c", str(concurrency),
            "--loglevel", "INFO"] + (["-E"] if events else [])
    os.chdir(_repo_root())
    os.execv(_venv_bin("celery"), argv)


def _repo_root() -> str:
    from bestchat.settings import REPO_ROOT

    return str(REPO_ROOT)


def _venv_bin(name: str) -> str:
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else (shutil.which(name) or name)


@click.command("rotate-keys")
@with_appcontext
def rotate_keys() -> None:
    """Re-encrypt every stored provider key under the first ENCRYPTION_KEYS key (one transaction)."""
    from bestchat.crypto import CryptoError
    from bestchat.services import provider_configs

    try:
        count = provider_configs.reencrypt_keys()
    except CryptoError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Re-encrypted {count} provider key(s) under the current first key.")


@click.group("plugins")
def plugins_command() -> None:
    """Inspect the installed plugins."""


@plugins_command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@with_appcontext
def list_plugins(as_json: bool) -> None:
    """Every plugin found: name, version, status, hooks, what it registered (providers with
    their default models, tools, context strategies), and the error of a failed one."""
    from bestchat.plugins import get_plugins, registered_by

    found = [{**plugin, "registered": registered_by(plugin["name"])} for plugin in get_plugins()]
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("No plugins found.")
        return
    rows = [(p["name"], p["version"] or "-", p["status"], ", ".join(p["hooks"]) or "-") for p in found]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for plugin, row in zip(found, rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        for line in ([f"error: {plugin['error']}"] if plugin["error"] else []) + plugin["warnings"] \
                + _registered_lines(plugin["registered"]):
            click.echo(f"    {line}")


def _registered_lines(registered: dict) -> list[str]:
    lines = [f"provider {p['name']}" + (f" ({', '.join(p['default_models'])})" if p["default_models"] else "")
             for p in registered["providers"]]
    if registered["tools"]:
        lines.append(f"tools: {', '.join(registered['tools'])}")
    if registered["strategies"]:
        lines.append(f"context strategies: {', '.join(registered['strategies'])}")
    return lines


@click.command("doctor")
@with_appcontext
def doctor() -> None:
    """Check this machine's tool sandbox: which method, why, and which risk levels can run."""
    from bestchat.tools.sandbox import isolation, runnable_risks

    status = isolation(current_app.config)
    risks = runnable_risks(current_app.config)
    click.echo(f"Tool sandbox: {'available' if status.available else 'NOT available'} "
               f"(TOOL_SANDBOX={current_app.config['TOOL_SANDBOX']!r})")
    click.echo(f"  method: {status.method}")
    click.echo(f"  detail: {status.detail}")
    click.echo(f"  risk levels that can run: {', '.join(risks) or 'none (every tool is refused)'}")


def register_commands(app: Flask) -> None:
    for command in (create_admin, serve, worker, rotate_keys, plugins_command, doctor):
        app.cli.add_command(command)


# `plugin new` / `plugins new` only write files: on `main` itself, so they run without an app.
add_scaffold_commands(main, plugins_command)
