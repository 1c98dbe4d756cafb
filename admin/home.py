"""The console's home page (``/admin/``): what an operator checks first.

Version and mode, readiness of the database, Redis and the workers, the answers in flight and
waiting, failed plugins, the users, and today's tokens and cost. Figures come from
:mod:`bestchat.services.console_status`, :func:`bestchat.health.backend_checks` and
:mod:`bestchat.services.usage_report`; the page has no script.
"""

from __future__ import annotations

from flask_admin import expose

from bestchat import __version__, health
from bestchat.admin.base import SecureIndexView
from bestchat.admin.usage import cost_text
from bestchat.services import console_status, usage_report


class HomeView(SecureIndexView):
    @expose("/")
    def index(self) -> str:
        return self.render(
            "bestchat_admin/home.html", version=__version__, mode=console_status.mode(),
            checks=health.backend_checks(), workers=console_status.workers(),
            generations=console_status.generations(), failed_plugins=console_status.failed_plugins(),
            users=console_status.users(), today=usage_report.today_totals(),
            today_date=usage_report.today().isoformat(), cost_text=cost_text)
