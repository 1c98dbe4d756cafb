"""The server-wide usage report of the admin console: tokens, cost and answers over a range of
UTC days, grouped by day, by user, by model or by group.

Each grouping is one SQL aggregation over ``usage_logs`` that runs the same on SQLite and
PostgreSQL (only the UTC day of a timestamp is spelled per dialect, in :func:`_utc_day`).
"Answers" counts distinct answered messages: an answer with tool rounds has one usage row per
round but is one answer; a row whose message was deleted keeps its tokens and cost but counts
no answer. A user in two groups counts in both; users in no group are reported
under :data:`NO_GROUP`, so the group totals can exceed the overall total.

``cost`` sums the known costs only; ``unpriced`` counts the requests (usage rows, one per model
round) stored with an unknown cost, which the console shows as unknown rather than as $0.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from bestchat.errors import Invalid
from bestchat.extensions import db
from bestchat.models import Group, GroupMember, UsageLog, User

GROUPINGS = ("day", "user", "model", "group")
DEFAULT_DAYS = 30
MAX_DAYS = 366
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(9999, 12, 30)
# The group name reported for users who belong to no group.
NO_GROUP = "(no group)"


@dataclass(frozen=True)
class UsageRow:
    """One line of a grouping: ``key`` is the day (YYYY-MM-DD), the user's email, the model
    (``provider/model``) or the group's name."""

    key: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    answers: int = 0
    # requests whose cost is unknown (not in ``cost``)
    unpriced: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_known(self) -> bool:
        """Whether ``cost`` is the whole cost (no request of unknown cost)."""
        return self.unpriced == 0


@dataclass(frozen=True)
class DateRange:
    """UTC days ``first..last``, both included."""

    first: date
    last: date

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=timezone.utc)

    @property
    def end(self) -> datetime:
        """The first instant after the range."""
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=timezone.utc)


def today() -> date:
    return datetime.now(timezone.utc).date()


def date_range(raw_first: str | None, raw_last: str | None, *, now: date | None = None) -> DateRange:
    """The range asked for (YYYY-MM-DD strings, either may be empty): by default the last
    ``DEFAULT_DAYS`` days up to today. :class:`Invalid` for a malformed date, a reversed range
    or one longer than ``MAX_DAYS``."""
    last = parse_date(raw_last, "to") or (now or today())
    first = parse_date(raw_first, "from") or max(FIRST_DATE, last - timedelta(days=DEFAULT_DAYS - 1))
    if first > last:
        raise Invalid("invalid_parameter", "'from' must not be after 'to'")
    if (last - first).days >= MAX_DAYS:
        raise Invalid("invalid_parameter", f"the range is longer than {MAX_DAYS} days")
    return DateRange(first, last)


def parse_date(raw: str | None, name: str) -> date | None:
    """The date of a query parameter ``name`` (``YYYY-MM-DD``; a longer ISO timestamp is cut to
    its date), None when absent; :class:`Invalid` unless within ``FIRST_DATE..LAST_DATE``."""
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw.strip()[:10])
    except ValueError:
        raise Invalid("invalid_parameter", f"'{name}' must be a date (YYYY-MM-DD)") from None
    if not FIRST_DATE <= value <= LAST_DATE:
        raise Invalid("invalid_parameter",
                      f"'{name}' must be between {FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()}")
    return value


def _utc_day(column) -> ColumnElement:
    """The UTC calendar day of a timestamp column. PostgreSQL's ``date()`` of a timestamptz
    follows the session's time zone, so the value is moved to UTC first; SQLite stores the UTC
    wall time as text and its ``date()`` reads it as is."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(literal_column("'UTC'"), column))
    return func.date(column)


def _sums() -> tuple:
    return (func.coalesce(func.sum(UsageLog.prompt_tokens), 0),
            func.coalesce(func.sum(UsageLog.completion_tokens), 0),
            func.coalesce(func.sum(UsageLog.cost), 0),
            func.count(func.distinct(UsageLog.message_id)),
            func.coalesce(func.sum(case((UsageLog.cost.is_(None), 1), else_=0)), 0))


def _row(key, prompt, completion, cost, answers, unpriced=0) -> UsageRow:
    return UsageRow(key=str(key), prompt_tokens=int(prompt), completion_tokens=int(completion),
                    cost=Decimal(str(cost or 0)), answers=int(answers), unpriced=int(unpriced or 0))


def _in_range(query, span: DateRange):
    return query.where(UsageLog.created_at >= span.start, UsageLog.created_at < span.end)


def by_day(span: DateRange) -> list[UsageRow]:
    """One row per day of the range, oldest first, days without usage as zeros."""
    day = _utc_day(UsageLog.created_at).label("day")
    found = {str(key)[:10]: _row(str(key)[:10], *sums) for key, *sums in
             db.session.execute(_in_range(select(day, *_sums()), span).group_by(day)).all()}
    return [found.get(d.isoformat(), UsageRow(d.isoformat())) for d in span.days]


def by_user(span: DateRange) -> list[UsageRow]:
    """One row per user with usage, the costliest (then the most tokens) first."""
    query = _in_range(select(User.email, *_sums()).select_from(UsageLog).join(User, User.id == UsageLog.user_id), span)
    return _ranked(db.session.execute(query.group_by(User.email)).all())


def by_model(span: DateRange) -> list[UsageRow]:
    """One row per ``provider/model``, the costliest (then the most tokens) first."""
    query = _in_range(select(UsageLog.provider, UsageLog.model, *_sums()), span)
    rows = db.session.execute(query.group_by(UsageLog.provider, UsageLog.model)).all()
    return _ranked([(f"{provider}/{model}", *sums) for provider, model, *sums in rows])


def by_group(span: DateRange) -> list[UsageRow]:
    """One row per group with usage (a user in two groups counts in both), and
    :data:`NO_GROUP` for the usage of users in none."""
    query = (select(Group.name, *_sums()).select_from(UsageLog)
             .outerjoin(GroupMember, GroupMember.user_id == UsageLog.user_id)
             .outerjoin(Group, Group.id == GroupMember.group_id))
    rows = db.session.execute(_in_range(query, span).group_by(Group.name)).all()
    return _ranked([(NO_GROUP if name is None else name, *sums) for name, *sums in rows])


def totals(span: DateRange) -> UsageRow:
    """Everything in the range, each answer counted once."""
    return _row("total", *db.session.execute(_in_range(select(*_sums()), span)).one())


def _ranked(rows) -> list[UsageRow]:
    result = [_row(*row) for row in rows]
    return sorted(result, key=lambda r: (-r.cost, -r.total_tokens, r.key))


REPORTS = {"day": by_day, "user": by_user, "model": by_model, "group": by_group}


def grouped(grouping: str, span: DateRange) -> list[UsageRow]:
    """The rows of ``grouping`` (one of :data:`GROUPINGS`); :class:`Invalid` for another."""
    try:
        report = REPORTS[grouping]
    except KeyError:
        raise Invalid("invalid_parameter", f"'by' must be one of {', '.join(GROUPINGS)}") from None
    return report(span)


def today_totals() -> UsageRow:
    """Today's (UTC) tokens, cost and answers."""
    day = today()
    return totals(DateRange(day, day))


# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_KEYS = {"day": "day", "user": "user_email", "model": "model", "group": "group"}


def safe_cell(value: object) -> object:
    """A text cell that cannot run as a spreadsheet formula (prefixed with ``'``); numbers
    pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cost_cell(row: UsageRow) -> str:
    """The known cost; empty when every request with tokens has an unknown cost."""
    if row.cost:
        return format(row.cost.normalize(), "f")
    return "" if row.unpriced else "0"


def csv_text(grouping: str, rows: list[UsageRow]) -> str:
    """The rows of ``grouping`` as CSV text, with a header line. ``cost_usd`` is the known cost
    (empty when none is known) and ``unpriced_requests`` the requests of unknown cost."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([CSV_KEYS[grouping], "prompt_tokens", "completion_tokens", "total_tokens",
                     "cost_usd", "answers", "unpriced_requests"])
    for row in rows:
        writer.writerow([safe_cell(row.key), row.prompt_tokens, row.completion_tokens, row.total_tokens,
                         _cost_cell(row), row.answers, row.unpriced])
    return out.getvalue()
