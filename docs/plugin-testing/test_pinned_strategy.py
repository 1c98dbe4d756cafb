"""A context strategy checked with the rules the server applies to its results."""

from bestchat.plugin_api import ContextStrategy, Fitted, Item, Situation, total
from bestchat.testing.context import broken_rule


class PinnedOnly(ContextStrategy):
    """Keeps only what is pinned: the system prompt and the newest question."""

    name = "pinned-only"
    description = "Keep only the system prompt and the newest question."

    def fit(self, situation):
        kept = [item for item in situation.items if item.pinned]
        return Fitted(kept, note={"dropped": len(situation.items) - len(kept)})


ITEMS = [
    Item("system", "Be brief.", 3, None, group=0, turn=0, pinned=True, kind="system"),
    Item("user", "An old question", 3, "u1", group=1, turn=1),
    Item("assistant", "An old answer", 3, "a1", group=2, turn=1),
    Item("user", "The new question", 3, "u2", group=3, turn=3, pinned=True),
]


def test_keeps_the_pinned_items_within_the_rules():
    situation = Situation(items=ITEMS, budget=10, count=lambda text: len(text.split()), summaries=None)
    result = PinnedOnly().fit(situation)
    assert broken_rule(ITEMS, result) is None
    assert [item.message_id for item in result.items] == [None, "u2"]
    assert result.note == {"dropped": 2} and total(result.items) <= situation.budget


def test_broken_rule_says_why_a_result_is_refused():
    assert broken_rule(ITEMS, Fitted(ITEMS[:3])) == "dropped a pinned item"
    assert broken_rule(ITEMS, None) == "returned NoneType, not Fitted"
