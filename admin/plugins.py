"""The plugins page: every plugin, what it registered, its runtime failures, block/unblock,
and the warnings about plugin settings (names that match no plugin).

Blocking stores the plugin's name in the ``BLOCKED_PLUGINS`` site setting
(:func:`bestchat.services.site_settings.set_plugin_blocked`): every web and worker process
rebuilds its registry without it within seconds. Names in the ``BLOCK_PLUGINS`` environment
setting are blocked before import and cannot be unblocked here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from werkzeug.wrappers import Response

from bestchat import plugins
from bestchat.admin.base import SecureView
from bestchat.errors import Invalid
from bestchat.plugins import PluginSettings, normalize_name
from bestchat.services import site_settings


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class PluginsView(SecureView):
    """Every plugin found: version, status and why, what it registered, hooks, warnings,
    failures since start; Block / Unblock (POST, CSRF)."""

    @expose("/")
    def index(self) -> str:
        config = current_app.config
        settings = PluginSettings.from_config(config)
        local = plugins.failure_counts()
        total = plugins.total_failure_counts()
        default_provider = str(config.get("DEFAULT_MODEL") or "").partition("/")[0]
        rows: list[dict[str, Any]] = []
        for record in plugins.get_plugins():
            name = record["name"]
            registered = plugins.registered_by(name)
            rows.append({
                **record, "registered": registered,
                "failures": local.get(name, 0),
                "total_failures": total[0].get(name, 0) if total else None,
                "env_blocked": settings.blocked_by_environment(name),
                "admin_blocked": settings.blocked_by_admin(name),
                "serves_default": any(p["name"] == default_provider for p in registered["providers"]),
            })
        # Names an admin blocked whose plugin is no longer installed: still unblockable.
        found = {normalize_name(row["name"]) for row in rows}
        gone = sorted(name for name in config.get("BLOCKED_PLUGINS") or [] if normalize_name(name) not in found)
        return self.render("bestchat_admin/plugins.html", plugins=rows, gone=gone,
                           warnings=plugins.setting_warnings(),
                           started=_time(plugins.STARTED_AT),
                           totals=total is not None,
                           total_since=_time(total[1]) if total and total[1] else None,
                           default_model=config.get("DEFAULT_MODEL"))

    @expose("/block", methods=("POST",))
    def block(self) -> Response:
        return self._set(True)

    @expose("/unblock", methods=("POST",))
    def unblock(self) -> Response:
        return self._set(False)

    def _set(self, blocked: bool) -> Response:
        name = request.form.get("name", "")
        known = {record["name"] for record in plugins.get_plugins()}
        if name not in known and name not in (current_app.config.get("BLOCKED_PLUGINS") or []):
            abort(404)
        if PluginSettings.from_config(current_app.config).blocked_by_environment(name):
            flash(f"{name} is blocked by the BLOCK_PLUGINS environment setting; change it there "
                  "and restart.", "error")
            return redirect(url_for(".index"))
        try:
            site_settings.set_plugin_blocked(current_user._get_current_object(), name, blocked)
        except Invalid as error:
            flash(error.message, "error")
            return redirect(url_for(".index"))
        flash(f"{name} {'blocked' if blocked else 'unblocked'} in every process.", "success")
        return redirect(url_for(".index"))
