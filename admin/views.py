"""Admin view of plugins (bases: :mod:`bestchat.admin.base`); users and the audit log have
their own modules (:mod:`bestchat.admin.users`, :mod:`bestchat.admin.audit`)."""

from __future__ import annotations

from flask_admin import expose

from bestchat import plugins
from bestchat.admin.base import SecureView


class PluginsView(SecureView):
    """Every plugin found, with its status and the error of a failed one."""

    @expose("/")
    def index(self) -> str:
        return self.render("bestchat_admin/plugins.html", plugins=plugins.get_plugins())
