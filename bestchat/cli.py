"""The ``bestchat`` command line (also ``flask --app wsgi ...``).

``serve`` (gunicorn + gevent), ``worker`` (Celery), ``create-admin``, ``rotate-keys``,
``plugins list`` (what each plugin registered, its warnings and failures), ``plugin new``
(writes a new plugin package, no app needed), ``models`` (the models a user sees) and
``doctor``; ``db upgrade`` comes from Flask-Migrate. Each command calls the service of its
area; domain errors end the command with their message.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from datetime import datetime, timezone

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
    """Inspect the installed plugins, or start a new one."""


@plugins_command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@with_appcontext
def list_plugins(as_json: bool) -> None:
    """List every plugin found, what it registered, its warnings and failures.

    For each plugin: name, version, status (loaded, failed, blocked), hooks, what it registered
    (providers with their default models, tools, context strategies), the error of a failed
    or blocked one, its warnings, and its runtime failures: counted in Redis over every web and
    worker process (without Redis each process counts its own: see the admin console). Then
    the warnings about the plugin settings (names that match no plugin)."""
    from redis.exceptions import RedisError

    from bestchat import plugins

    try:
        totals, unreachable = plugins.total_failure_counts(), None
    except RedisError as error:
        totals, unreachable = None, error
    found = [{**plugin, "registered": plugins.registered_by(plugin["name"]),
              "failures": totals[0].get(plugin["name"], 0) if totals else None}
             for plugin in plugins.get_plugins()]
    warnings = plugins.setting_warnings()
    if as_json:
        click.echo(json.dumps({"plugins": found, "warnings": warnings,
                               "failures_since": totals[1] if totals else None}, indent=2))
        return
    if not found:
        click.echo("No plugins found.")
    rows = [(p["name"], p["version"] or "-", p["status"], ", ".join(p["hooks"]) or "-") for p in found]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for plugin, row in zip(found, rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
        for line in _plugin_lines(plugin):
            click.echo(f"    {line}")
    if warnings:
        click.echo("\nPlugin settings:")
        for warning in warnings:
            click.echo(f"    warning: {warning}")
    click.echo("\n" + _failures_note(totals, unreachable))


def _plugin_lines(plugin: dict) -> list[str]:
    """The lines under a plugin's row: error, warnings, what it registered, failures."""
    registered = plugin["registered"]
    lines = [f"error: {plugin['error']}"] if plugin["error"] else []
    lines += [f"warning: {warning}" for warning in plugin["warnings"]]
    lines += [f"provider {p['name']}" + (f" ({', '.join(p['default_models'])})" if p["default_models"] else "")
              for p in registered["providers"]]
    if registered["tools"]:
        lines.append(f"tools: {', '.join(registered['tools'])}")
    if registered["strategies"]:
        lines.append(f"context strategies: {', '.join(registered['strategies'])}")
    if plugin["failures"]:
        lines.append(f"failures: {plugin['failures']}")
    return lines


def _failures_note(totals: tuple[dict[str, int], float | None] | None, unreachable: Exception | None) -> str:
    """What the failure counts are (this command's own process has none)."""
    if unreachable is not None:
        return f"Runtime failures: not shown, Redis did not answer ({unreachable})."
    if totals is None:
        return ("Runtime failures: not shown. Without Redis each process counts its own; the "
                "admin console's Plugins page shows those of the web process.")
    if totals[1] is None:
        return "Runtime failures: counted in Redis over every web and worker process; none so far."
    since = datetime.fromtimestamp(totals[1], timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"Runtime failures: counted in Redis over every web and worker process since {since}."


@click.command("models")
@click.option("--user", "email", metavar="EMAIL",
              help="The account whose models to list; without it, a newly registered ordinary user's.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@with_appcontext
def list_models(email: str | None, as_json: bool) -> None:
    """List the models a user sees in the model picker.

    The list GET /api/v1/models gives that user: each model's id, name, provider, the plugin
    of the provider and its source (the user's own connection, a global one, or a provider
    needing no key). Without --user: what a newly registered ordinary user sees (no
    connections of their own, in no group): the models of the enabled global connections and
    of the providers that need no key and no base URL."""
    from bestchat.plugins import get_providers
    from bestchat.providers import models_cache, registry
    from bestchat.services import accounts

    if email is None:
        user, note = _newcomer(), "a newly registered user (no connections, in no group)"
    else:
        user = accounts.find_by_email(email.strip().lower())
        if user is None:
            raise click.ClickException(f"no account with the email {email!r}")
        note = f"{user.email}" + (" (disabled: cannot sign in)" if user.disabled else "")
    try:
        models = registry.available_models(user)
    finally:
        if email is None:
            models_cache.invalidate(user.id)  # nothing kept for the user who does not exist
    providers = get_providers()
    models = [{**model, "plugin": getattr(providers.get(model["provider"]), "plugin", None)} for model in models]
    default = current_app.config["DEFAULT_MODEL"]
    default = default if any(model["id"] == default for model in models) else None
    if as_json:
        click.echo(json.dumps({"models": models, "default": default}, indent=2))
        return
    click.echo(f"Models of {note}:")
    if not models:
        click.echo("    none")
        return
    rows = [("ID", "NAME", "PROVIDER", "PLUGIN", "SOURCE")]
    rows += [(m["id"] + (" (default)" if m["id"] == default else ""), m["name"], m["provider"],
              m["plugin"] or "-", m["source"]) for m in models]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])


def _newcomer():
    """An ordinary account as registration makes it, not stored (it has no id in the database,
    so no connections and no group)."""
    import uuid

    from bestchat.models import User

    return User(id=uuid.uuid4(), email="newcomer@example.invalid", role="user", disabled=False)


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
    for command in (create_admin, serve, worker, rotate_keys, plugins_command, list_models, doctor):
        app.cli.add_command(command)


# `plugin new` / `plugins new` only write files: on `main` itself, so they run without an app.
add_scaffold_commands(main, plugins_command)
