"""Checks for the tests of context strategy plugins.

:func:`broken_rule` is the check the server applies to every strategy's result before using
it (a result that breaks a rule is logged and skipped, as if the strategy had returned None),
so a strategy's tests can assert that its results would be used::

    result = MyStrategy().fit(situation)
    assert broken_rule(situation.items, result) is None
"""

from __future__ import annotations

from typing import Any

from bestchat.context import chain
from bestchat.context.base import Item

__all__ = ["broken_rule"]


def broken_rule(before: list[Item], result: Any) -> str | None:
    """Why ``result`` (what a strategy's ``fit()`` returned for the items ``before``) would be
    refused by the server, or None when it keeps every rule: a :class:`Fitted` whose note is a
    dict, every pinned item kept unchanged, the order kept, no group split, no item made
    longer, nothing added but summary items (none after the newest user message). A strategy
    returns None, not a Fitted, when it has nothing to do."""
    return chain.broken_rule(before, result)
