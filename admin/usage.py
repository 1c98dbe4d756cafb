"""The console's usage dashboard: tokens, cost and answers over a range of UTC days, per day (with
a chart), per user, per model and per group, each grouping downloadable as CSV. A cost that
includes requests of unknown price says so ("unknown", or "$1.20 + unknown") with the number
of such requests, never counting them as $0.

The figures come from :mod:`bestchat.services.usage_report`; every export is written to the audit
log (``usage.exported``).
"""

from __future__ import annotations

from flask import Response, request
from flask_admin import expose
from flask_login import current_user

from bestchat.admin import usage_chart
from bestchat.admin.base import SecureView
from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.services import audit, usage_report
from bestchat.services.usage_report import UsageRow

TITLES = {"day": "Per day", "user": "Per user", "model": "Per model", "group": "Per group"}


def cost_text(row: UsageRow) -> str:
    """The row's cost for people: dollars when every request's price is known, "unknown" when
    none is, "$1.20 + unknown" for a mix."""
    if row.cost_known:
        return usage_chart.money(row.cost)
    if not row.cost:
        return "unknown"
    return f"{usage_chart.money(row.cost)} + unknown"


class UsageView(SecureView):
    """``/admin/usage/?from=&to=&by=`` and ``/admin/usage/export.csv?from=&to=&by=``."""

    @expose("/")
    def index(self) -> str | tuple[str, int]:
        grouping = request.args.get("by") or "day"
        try:
            span = usage_report.date_range(request.args.get("from"), request.args.get("to"))
            rows = usage_report.grouped(grouping, span)
        except Invalid as error:
            return self.render("bestchat_admin/usage.html", error=error.message, grouping="day",
                               titles=TITLES, raw_from=request.args.get("from", ""),
                               raw_to=request.args.get("to", "")), 400
        per_day = rows if grouping == "day" else usage_report.by_day(span)
        return self.render(
            "bestchat_admin/usage.html", error=None, span=span, grouping=grouping, titles=TITLES,
            rows=rows, totals=usage_report.totals(span), chart=usage_chart.build(per_day),
            money=usage_chart.money, cost_text=cost_text, no_group=usage_report.NO_GROUP,
            raw_from=span.first.isoformat(), raw_to=span.last.isoformat())

    @expose("/export.csv")
    def export(self) -> Response:
        grouping = request.args.get("by") or "day"
        try:
            span = usage_report.date_range(request.args.get("from"), request.args.get("to"))
            rows = usage_report.grouped(grouping, span)
        except Invalid as error:
            return Response(error.message + "\n", status=400, mimetype="text/plain")
        audit.record("usage.exported", actor_id=current_user.id, target_type="usage",
                     grouping=grouping, first=span.first.isoformat(), last=span.last.isoformat(),
                     rows=len(rows))
        db.session.commit()
        name = f"usage-by-{grouping}-{span.first.isoformat()}-{span.last.isoformat()}.csv"
        return Response(usage_report.csv_text(grouping, rows), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
