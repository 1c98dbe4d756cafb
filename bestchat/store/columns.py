"""The column lists of the rows the store writes and reads, and their statement parameters.

Each list is defined here once and every statement is generated from it, so an SQL column
order and the Python that reads or fills it cannot drift apart:

- :data:`MESSAGE` and :data:`CONVERSATION`: every column of a new row, for the INSERTs of an
  exchange; :func:`parameters` names a row's values ``<prefix><column>_<row>``.
- :data:`CLAIMED_MESSAGE` and :data:`CLAIMED_CONVERSATION`: what a claim returns of the answer
  and of its conversation (the fields of :class:`bestchat.store.claimed.Claimed` of the same
  names).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, NamedTuple

from sqlalchemy import JSON
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql

from bestchat.models import Conversation, Message


class Column(NamedTuple):
    key: str  # the mapped attribute
    name: str  # the table column
    sql_type: str  # its PostgreSQL type, for the CASTs of untyped parameters
    is_json: bool  # passed as JSON text


def _columns(model: type) -> tuple[Column, ...]:
    dialect = postgresql.dialect()
    return tuple(Column(attr.key, attr.columns[0].name, attr.columns[0].type.compile(dialect=dialect),
                        isinstance(attr.columns[0].type, JSON))
                 for attr in sa_inspect(model).column_attrs)


MESSAGE = _columns(Message)
CONVERSATION = _columns(Conversation)

CLAIMED_MESSAGE = ("conversation_id", "parent_id", "model", "last_seq", "content", "parts")
CLAIMED_CONVERSATION = ("user_id", "title", "system_prompt", "settings", "disabled_tools", "context_strategy")


def names(columns: Iterable[Column]) -> str:
    """``id, conversation_id, ...``: the column names, for an INSERT's column list."""
    return ", ".join(column.name for column in columns)


def parameter(column: Column, index: int, prefix: str = "") -> str:
    """The typed placeholder of ``column``'s parameter in row ``index``: ``<prefix><column>_<index>``."""
    return f"CAST(%({prefix}{column.name}_{index})s AS {column.sql_type})"


def placeholders(columns: Iterable[Column], index: int, prefix: str = "",
                 computed: dict[str, str] | None = None) -> str:
    """Row ``index``'s values as typed placeholders, except the ``computed`` columns (SQL
    expressions)."""
    computed = computed or {}
    return ", ".join(computed.get(column.name, parameter(column, index, prefix)) for column in columns)


def parameters(rows: Iterable[Any], columns: Iterable[Column], prefix: str = "") -> dict[str, Any]:
    """The rows' values as the parameters ``<prefix><column>_<index>`` (JSON columns as JSON text)."""
    columns = tuple(columns)
    values: dict[str, Any] = {}
    for index, row in enumerate(rows):
        for column in columns:
            value = getattr(row, column.key)
            values[f"{prefix}{column.name}_{index}"] = json.dumps(value) if column.is_json else value
    return values


def column(columns: Iterable[Column], name: str) -> Column:
    return next(each for each in columns if each.name == name)


def row_values(row: Any, columns: Iterable[Column]) -> dict[str, Any]:
    """A row's values by column name, for a Core INSERT."""
    return {column.name: getattr(row, column.key) for column in columns}
