"""The console's usage dashboard: who may see and export it, the figures per day, user, model
and group on SQLite and PostgreSQL, the server-drawn chart, and safe, audited CSV exports."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from bestchat.admin import usage_chart
from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.models import AuditLog, UsageLog, User
from bestchat.services import usage_report
from bestchat.services.usage_report import DateRange, UsageRow
from tests.console_data import DAY1, RANGE, at, seed_usage, sign_in_admin

PAGES = ["/admin/usage/", "/admin/usage/export.csv"]
SPAN = DateRange(DAY1, DAY1.replace(day=3))


def figures(row: UsageRow) -> tuple:
    return row.key, row.prompt_tokens, row.completion_tokens, row.total_tokens, row.cost, row.answers


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_sign_in(client, path):
    response = client.get(path + "?by=user")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={path}%3Fby%3Duser"


@pytest.mark.parametrize("path", PAGES)
def test_non_admins_are_refused(app, client, user, path):
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", PAGES)
def test_disabled_admins_are_refused(app, path):
    admin = sign_in_admin(app)
    with app.app_context():
        from bestchat.services import accounts

        root = accounts.find_by_email("root@example.com")
        root.disabled = True
        db.session.commit()
    assert admin.get(path).status_code in (302, 403)


def test_unsafe_requests_without_csrf_token_are_refused(app):
    admin = sign_in_admin(app)
    assert admin.http.post("/admin/usage/").status_code in (403, 405)
    assert admin.http.post("/admin/usage/export.csv").status_code in (403, 405)


def test_figures_per_day_user_model_group(app):
    seed_usage(app)
    with app.app_context():
        assert [figures(r) for r in usage_report.by_day(SPAN)] == [
            ("2026-03-01", 260, 55, 315, Decimal("0.03"), 2),
            ("2026-03-02", 200, 50, 250, Decimal("0.05"), 1),
            ("2026-03-03", 1, 1, 2, Decimal("0"), 1)]
        assert [figures(r) for r in usage_report.by_user(SPAN)] == [
            ("bob@example.com", 200, 50, 250, Decimal("0.05"), 1),
            ("alice@example.com", 260, 55, 315, Decimal("0.03"), 2),
            ("carol@example.com", 1, 1, 2, Decimal("0"), 1)]
        assert [figures(r) for r in usage_report.by_model(SPAN)] == [
            ("openai/gpt-4o", 450, 100, 550, Decimal("0.08"), 2),
            ("demo/echo", 11, 6, 17, Decimal("0"), 2)]
        assert [figures(r) for r in usage_report.by_group(SPAN)] == [
            ("Team A", 460, 105, 565, Decimal("0.08"), 3),
            ("Team B", 260, 55, 315, Decimal("0.03"), 2),
            ("(no group)", 1, 1, 2, Decimal("0"), 1)]
        assert figures(usage_report.totals(SPAN)) == ("total", 461, 106, 567, Decimal("0.08"), 4)


def test_days_are_utc_days_whatever_the_database_time_zone(app, backend):
    seed_usage(app)
    with app.app_context():
        if backend == "production":  # PostgreSQL: a session far east of UTC
            db.session.execute(text("SET TIME ZONE 'Asia/Tokyo'"))
        days = usage_report.by_day(DateRange(DAY1, DAY1))
        assert [figures(r) for r in days] == [("2026-03-01", 260, 55, 315, Decimal("0.03"), 2)]


def test_page_shows_totals_and_the_chosen_grouping(app):
    seed_usage(app)
    admin = sign_in_admin(app)
    page = admin.get("/admin/usage/", query_string={**RANGE, "by": "group"}).get_data(as_text=True)
    assert re.search(r'id="usage-total-tokens">567<', page)
    assert re.search(r'id="usage-total-cost">\$0\.08<', page)
    assert re.search(r'id="usage-total-answers">4<', page)
    table = page[page.index('id="usage-table"'):]
    assert re.search(r"<td>Team A</td><td[^>]*>460</td>", table)
    assert "(no group)" in table and "counts in both" in page
    by_user = admin.get("/admin/usage/", query_string={**RANGE, "by": "user"}).get_data(as_text=True)
    assert "bob@example.com" in by_user[by_user.index('id="usage-table"'):]


def test_default_range_is_the_last_30_days():
    span = usage_report.date_range(None, None, now=DAY1)
    assert (span.first.isoformat(), span.last.isoformat()) == ("2026-01-31", "2026-03-01")
    assert len(span.days) == 30


@pytest.mark.parametrize("query", [{"from": "yesterday"}, {"from": "2026-03-05", "to": "2026-03-01"},
                                   {"from": "2024-01-01", "to": "2026-01-01"}, {"by": "planet"}])
def test_bad_input_is_a_clear_error(app, query):
    admin = sign_in_admin(app)
    page = admin.get("/admin/usage/", query_string=query)
    assert page.status_code == 400
    assert "alert-danger" in page.get_data(as_text=True)
    export = admin.get("/admin/usage/export.csv", query_string=query)
    assert export.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(AuditLog).where(AuditLog.action == "usage.exported")) is None


def test_chart_has_one_bar_per_day_and_no_cost_axis_without_cost(app):
    admin = sign_in_admin(app)
    page = admin.get("/admin/usage/", query_string={"from": "2026-01-01", "to": "2026-01-10"}).get_data(as_text=True)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count('<g class="day-bar">') == 10
    assert "cost-tick" not in svg and "cost-point" not in svg and "$" not in svg
    assert "No cost recorded" in page


def test_chart_draws_cost_when_there_is_some(app):
    seed_usage(app)
    admin = sign_in_admin(app)
    page = admin.get("/admin/usage/", query_string=RANGE).get_data(as_text=True)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count('<g class="day-bar">') == 3
    assert svg.count('class="cost-point"') == 3
    assert re.findall(r'class="tick cost-tick"[^>]*>([^<]+)<', svg) == ["$0", "$0.02", "$0.04", "$0.06"]


def test_day_labels_are_thinned_and_never_overlap():
    rows = [UsageRow(f"2026-01-{d:02d}") for d in range(1, 32)] * 3  # 93 days
    chart = usage_chart.build(rows[:90])
    xs = [x for x, _ in chart.day_labels]
    assert 5 <= len(xs) < 90
    assert all(b - a >= usage_chart.LABEL_WIDTH for a, b in zip(xs, xs[1:]))
    assert xs[-1] == chart.bars[-1].center  # the last day is always labelled
    few = usage_chart.build([UsageRow("2026-01-01"), UsageRow("2026-01-02")])
    assert [text for _, text in few.day_labels] == ["01-01", "01-02"]


def test_nice_axis_maxima():
    assert [usage_chart.nice_ceiling(v) for v in (0, 1, 3, 7, 315, 0.03, 0.05)] == [1, 1, 5, 10, 500, 0.05, 0.05]


def test_csv_export_per_grouping_is_audited(app):
    seed_usage(app)
    admin = sign_in_admin(app)
    response = admin.get("/admin/usage/export.csv", query_string={**RANGE, "by": "model"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [["model", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd", "answers",
                     "unpriced_requests"],
                    ["openai/gpt-4o", "450", "100", "550", "0.08", "2", "0"],
                    ["demo/echo", "11", "6", "17", "0", "2", "0"]]
    days = list(csv.reader(io.StringIO(admin.get("/admin/usage/export.csv", query_string=RANGE).get_data(as_text=True))))
    assert [r[0] for r in days] == ["day", "2026-03-01", "2026-03-02", "2026-03-03"]
    with app.app_context():
        entries = db.session.scalars(select(AuditLog).where(AuditLog.action == "usage.exported")
                                     .order_by(AuditLog.created_at)).all()
        assert [e.details["grouping"] for e in entries] == ["model", "day"]
        assert entries[0].details["first"] == "2026-03-01" and entries[0].details["last"] == "2026-03-03"
        assert entries[0].actor_id is not None


def test_csv_cells_cannot_run_as_formulas(app):
    seed_usage(app)
    with app.app_context():
        from bestchat.models import Group

        db.session.scalar(select(Group).where(Group.name == "Team B")).name = "=HYPERLINK(\"http://x\")"
        db.session.scalar(select(Group).where(Group.name == "Team A")).name = "@SUM(A1)"
        db.session.commit()
    admin = sign_in_admin(app)
    body = admin.get("/admin/usage/export.csv", query_string={**RANGE, "by": "group"}).get_data(as_text=True)
    names = [row[0] for row in csv.reader(io.StringIO(body))][1:]
    assert names == ["'@SUM(A1)", "'=HYPERLINK(\"http://x\")", "(no group)"]
    assert [usage_report.safe_cell(v) for v in ("+1", "-1", "ok", 5)] == ["'+1", "'-1", "ok", 5]


def test_grouping_must_be_known():
    with pytest.raises(Invalid):
        usage_report.grouped("planet", SPAN)


def add_unpriced(app) -> None:
    """Two requests of unknown price in the range: carol's (no group) and alice's (Teams A, B)."""
    with app.app_context():
        for email, tokens in (("carol@example.com", 30), ("alice@example.com", 70)):
            owner = db.session.scalar(select(User.id).where(User.email == email))
            db.session.add(UsageLog(user_id=owner, provider="openai", model="mystery", prompt_tokens=tokens,
                                    completion_tokens=0, cost=None, created_at=at(DAY1, 12)))
        db.session.commit()


def test_unknown_cost_is_shown_as_unknown_never_as_zero(app):
    seed_usage(app)
    add_unpriced(app)
    with app.app_context():
        by_model = {r.key: r for r in usage_report.by_model(SPAN)}
        assert (by_model["openai/mystery"].cost, by_model["openai/mystery"].unpriced) == (Decimal(0), 2)
        assert not by_model["openai/mystery"].cost_known and by_model["demo/echo"].cost_known
        assert {r.key: r.unpriced for r in usage_report.by_user(SPAN)} == {
            "bob@example.com": 0, "alice@example.com": 1, "carol@example.com": 1}
        assert {r.key: r.unpriced for r in usage_report.by_group(SPAN)} == {"Team A": 1, "Team B": 1, "(no group)": 1}
        assert usage_report.totals(SPAN).unpriced == 2
    admin = sign_in_admin(app)
    page = admin.get("/admin/usage/", query_string={**RANGE, "by": "model"}).get_data(as_text=True)
    assert re.search(r'id="usage-total-cost">\$0\.08 \+ unknown<', page)
    assert "2 requests of unknown price" in page
    table = page[page.index('id="usage-table"'):]
    assert re.search(r'<td>openai/mystery</td>.*?<td class="text-right cost">unknown</td>'
                     r'<td class="text-right unpriced">2</td>', table, re.S)
    assert re.search(r'<td>demo/echo</td>.*?<td class="text-right cost">\$0</td>', table, re.S)
    by_user = admin.get("/admin/usage/", query_string={**RANGE, "by": "user"}).get_data(as_text=True)
    assert re.search(r'<td>alice@example.com</td>.*?cost">\$0\.03 \+ unknown</td>', by_user, re.S)
    by_group = admin.get("/admin/usage/", query_string={**RANGE, "by": "group"}).get_data(as_text=True)
    assert re.search(r'<td>\(no group\)</td>.*?cost">unknown</td>', by_group, re.S)
    rows = list(csv.reader(io.StringIO(admin.get("/admin/usage/export.csv", query_string={**RANGE, "by": "model"})
                                       .get_data(as_text=True))))
    assert ["openai/mystery", "100", "0", "100", "", "0", "2"] in rows
    home = admin.get("/admin/").get_data(as_text=True)
    assert 'id="today-cost">' in home
