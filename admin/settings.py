"""The settings page: the server settings an admin may change at runtime (stored in the
database and applied in every process: :mod:`bestchat.services.site_settings`).

One form shows every editable key with its effective value and where it comes from (the
defaults, settings file or environment, or set here); saving stores only the keys whose value
changed, all or nothing; a key's Reset button deletes its row (the file/environment value
applies again). A bad value shows the error and changes nothing.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from werkzeug.wrappers import Response

from bestchat import plugins
from bestchat.admin.base import SecureView
from bestchat.errors import Invalid
from bestchat.services import site_settings

PLAIN_KEYS = ("REGISTRATION", "DEFAULT_MODEL", "UPLOAD_MAX_BYTES", "RATELIMIT_SEND_PER_USER",
              "RATELIMIT_LOGIN_PER_IP", "RATELIMIT_REGISTER_PER_IP", "USER_MAX_ACTIVE_GENERATIONS")


def submitted(form: Any) -> dict[str, Any]:
    """The form's values by key: ``CONTEXT_STRATEGIES`` from the checked strategies in the
    order of their position fields, ``BLOCKED_PLUGINS`` from a comma-separated list."""
    values: dict[str, Any] = {key: form[key] for key in PLAIN_KEYS if key in form}
    if "CONTEXT_STRATEGIES_SENT" in form:
        chosen = form.getlist("CONTEXT_STRATEGIES")

        def position(name: str) -> tuple[float, int]:
            try:
                return float(form.get(f"order_{name}", "")), chosen.index(name)
            except ValueError:
                return float("inf"), chosen.index(name)

        values["CONTEXT_STRATEGIES"] = sorted(chosen, key=position)
    if "BLOCKED_PLUGINS" in form:
        values["BLOCKED_PLUGINS"] = [name.strip() for name in form["BLOCKED_PLUGINS"].split(",") if name.strip()]
    return values


class SettingsView(SecureView):
    """Every editable setting; Save (changed keys only) and Reset per key (POST, CSRF)."""

    @expose("/")
    def index(self) -> str:
        return self._page()

    @expose("/", methods=("POST",))
    def save(self) -> Response | tuple[str, int]:
        actor = current_user._get_current_object()
        try:
            if request.form.get("reset"):
                site_settings.reset(actor, [request.form["reset"]])
                flash(f"{request.form['reset']} reset to its file/environment value.", "success")
            else:
                changed = site_settings.update(actor, site_settings.changed(submitted(request.form)))
                flash(f"Saved: {', '.join(sorted(changed))}." if changed else "Nothing changed.", "success")
        except Invalid as error:
            return self._page(error=error.message, error_key=(error.details or {}).get("key")), 400
        return redirect(url_for(".index"))

    def _page(self, error: str | None = None, error_key: str | None = None) -> str:
        settings = {item["key"]: item for item in site_settings.effective()}
        models = site_settings.server_models()
        current_model = settings["DEFAULT_MODEL"]["value"]
        if current_model not in models:
            models.append(current_model)
        chain = list(settings["CONTEXT_STRATEGIES"]["value"] or [])
        installed = sorted(plugins.get_context_strategies())
        strategies = [{"name": name, "checked": name in chain,
                       "order": chain.index(name) + 1 if name in chain else ""}
                      for name in chain if name in installed] + \
                     [{"name": name, "checked": False, "order": ""} for name in installed if name not in chain]
        return self.render("bestchat_admin/settings.html", settings=settings, models=models,
                           strategies=strategies, choices=site_settings.REGISTRATION_CHOICES,
                           error=error, error_key=error_key,
                           refresh=current_app.config.get("SITE_SETTINGS_REFRESH_SECONDS", 1.0))
