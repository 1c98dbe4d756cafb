"""The console's Connections page: the global provider connections every user may use.

List, create, edit, delete (after a confirmation page), discover the server's models, choose
which are offered and their display names, test, and move a connection up or down the failover
order. Every change goes through :mod:`bestchat.services.provider_configs`, which validates and
audits it. Keys are write-only: the form's key field is always empty (empty keeps the stored
key, "remove key" removes it) and pages show at most its last four characters. Users' own
connections are counted per provider, never listed: their addresses are their owners'.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user

from bestchat.admin.base import SecureView
from bestchat.errors import DomainError, Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import ProviderConfig
from bestchat.providers import registry
from bestchat.services import provider_configs
from bestchat.validation import parse_uuid

MAX_FORM_MODELS = provider_configs.MAX_MODELS


class ConnectionsView(SecureView):
    """Global connections (``ProviderConfig`` rows without a user)."""

    @expose("/")
    def index(self) -> str:
        return self.render("bestchat_admin/connections.html", configs=provider_configs.global_configs(),
                           user_counts=provider_configs.user_config_counts(),
                           types={t["name"]: t for t in provider_configs.provider_types()})

    @expose("/new", methods=("GET", "POST"))
    def create(self) -> Any:
        types = provider_configs.provider_types()
        if request.method == "GET":
            return self._form(None, types, provider=request.args.get("provider") or "")
        try:
            values = {"scope": "global", "provider": request.form.get("provider", ""), **_basic_values(None)}
            config = provider_configs.create_config(_actor(), values)
        except DomainError as error:
            db.session.rollback()
            return self._form(None, types, error=error.message, provider=request.form.get("provider", "")), 400
        flash(f"Connection '{config.name}' created.", "success")
        _flash_discovery(provider_configs.last_discovery(config))
        return redirect(url_for(".edit", config_id=config.id))

    @expose("/<config_id>/", methods=("GET", "POST"))
    def edit(self, config_id: str) -> Any:
        config = _global(config_id)
        if request.method == "GET":
            return self._form(config, provider_configs.provider_types())
        try:
            values = _basic_values(config)
            if request.form.get("models_form"):
                values.update(_model_values(config))
            provider_configs.update_config(_actor(), config.id, values)
        except DomainError as error:
            db.session.rollback()
            return self._form(_global(config_id), provider_configs.provider_types(), error=error.message), 400
        flash(f"Connection '{config.name}' saved.", "success")
        _flash_discovery(provider_configs.last_discovery(config))
        return redirect(url_for(".edit", config_id=config.id))

    @expose("/<config_id>/discover", methods=("POST",))
    def discover(self, config_id: str) -> Any:
        config = _global(config_id)
        _, result = provider_configs.discover(_actor(), config.id)
        _flash_discovery(result)
        return redirect(url_for(".edit", config_id=config.id))

    @expose("/<config_id>/test", methods=("POST",))
    def test(self, config_id: str) -> Any:
        config = _global(config_id)
        result = provider_configs.check_config(_actor(), config.id)
        if result["ok"]:
            message = f"Test passed: model '{result['model']}' answered."
            if result.get("not_listed"):
                message += " Not listed by the server: " + ", ".join(result["not_listed"]) + "."
            flash(message, "success")
        else:
            tried = f" (model '{result['model']}')" if result.get("model") else ""
            flash(f"Test failed{tried}: {result['error']}", "error")
        back = url_for(".index") if request.form.get("back") == "list" else url_for(".edit", config_id=config.id)
        return redirect(back)

    @expose("/<config_id>/move", methods=("POST",))
    def move(self, config_id: str) -> Any:
        config = _global(config_id)
        try:
            provider_configs.move_global(_actor(), config.id, request.form.get("direction", ""))
        except Invalid as error:
            flash(error.message, "error")
        return redirect(url_for(".index"))

    @expose("/<config_id>/delete", methods=("GET", "POST"))
    def delete(self, config_id: str) -> Any:
        config = _global(config_id)
        if request.method == "GET":
            return self.render("bestchat_admin/connection_delete.html", config=config)
        name = config.name
        provider_configs.delete_config(_actor(), config.id)
        flash(f"Connection '{name}' deleted.", "success")
        return redirect(url_for(".index"))

    def _form(self, config: ProviderConfig | None, types: list[dict[str, Any]], *, error: str | None = None,
              provider: str = "") -> str:
        return self.render("bestchat_admin/connection_form.html", config=config, types=types, error=error,
                           provider=provider, models=_model_rows(config) if config else [],
                           type_info={t["name"]: t for t in types})


def _actor():
    return current_user._get_current_object()


def _global(config_id: str) -> ProviderConfig:
    """The global config with this id; 404 for another user's, an unknown or a malformed id."""
    try:
        config = provider_configs.get_config(_actor(), parse_uuid(config_id, "connection"))
    except NotFound:
        abort(404)
    if config.user_id is not None:
        abort(404)
    return config


def _basic_values(config: ProviderConfig | None) -> dict[str, Any]:
    """Name, base URL, key, priority and enabled from the form (an empty key field keeps the
    stored key; "remove key" removes it)."""
    form = request.form
    values: dict[str, Any] = {
        "name": form.get("name", "").strip() or None,
        "base_url": form.get("base_url", "").strip() or None,
        "enabled": form.get("enabled") == "on",
    }
    priority = form.get("priority", "").strip()
    if priority:
        try:
            values["priority"] = int(priority)
        except ValueError:
            raise Invalid("invalid_field", "'priority' must be a whole number") from None
    key = form.get("api_key", "").strip()
    if config is not None and form.get("remove_key") == "on":
        values["api_key"] = None
    elif key:
        values["api_key"] = key
    return values


def _model_values(config: ProviderConfig) -> dict[str, Any]:
    """The offered models (checked ones plus those typed one per line) and display names."""
    form = request.form
    chosen = form.getlist("model")[:MAX_FORM_MODELS]
    typed = [line.strip() for line in form.get("extra_models", "").splitlines() if line.strip()]
    models = list(dict.fromkeys(chosen + typed))
    names = {}
    for key, value in form.items():
        if key.startswith("display:") and value.strip():
            names[key.removeprefix("display:")] = value
    return {"enabled_models": models, "model_names": names}


def _model_rows(config: ProviderConfig) -> list[dict[str, Any]]:
    """A row per model the form offers to choose: what the server listed, what is chosen, and
    the provider's defaults for a connection without a base URL."""
    cls = registry.provider_classes().get(config.provider)
    ids = list(config.discovered_models or [])
    ids += [m for m in config.enabled_models or [] if m not in ids]
    if cls is not None and not config.base_url:
        ids += [m for m in cls.default_models if m not in ids]
    listed = set(config.discovered_models or [])
    chosen = set(config.enabled_models or [])
    names = config.model_names or {}
    return [{"id": m, "chosen": m in chosen, "listed": config.discovered_models is None or m in listed,
             "name": names.get(m, "")} for m in ids]


def _flash_discovery(result: dict[str, Any] | None) -> None:
    if result is None:
        return
    if result["ok"]:
        flash(f"Discovery: the server lists {result['count']} model(s).", "success")
    else:
        flash(f"Discovery failed: {result['error']}", "error")

