"""The built-in context strategies, taken from the plugin registry as the chain takes them:
truncate, compress, summarize (with a summary store kept in a list)."""

from __future__ import annotations

import pytest

import bestchat_context
from bestchat.plugin_api import (
    FilePiece, Item, Situation, Summary, SummaryUnavailable, get_context_strategies, total,
)
from bestchat.testing import plugin_registered
from bestchat.testing.context import broken_rule


def count(text: str) -> int:
    return (len(text) + 3) // 4


@pytest.fixture
def strategies(app):
    with plugin_registered(bestchat_context, "bestchat-context") as record:  # installed or not
        assert record["status"] == "loaded"
        yield get_context_strategies()


class Store:
    """Summaries in a list; ``make`` records what it was given."""

    def __init__(self, tokens=50, fail=False):
        self.tokens, self.fail = tokens, fail
        self.stored: list[Summary] = []
        self.calls: list[tuple[list[str], Summary | None]] = []

    def latest(self, items):
        ids = {item.message_id for item in items}
        return next((s for s in reversed(self.stored) if s.last_message_id in ids), None)

    def make(self, items, previous):
        self.calls.append(([item.message_id for item in items], previous))
        if self.fail:
            raise SummaryUnavailable("the model is down")
        summary = Summary(f"s{len(self.stored)}", f"summary {len(self.stored)}", self.tokens, items[-1].message_id,
                          (previous.covered if previous else 0) + len(items))
        self.stored.append(summary)
        return summary


def conversation(turns=6, tool_tokens=400, file_tokens=0):
    """The system prompt, then per turn: a question (with a file when ``file_tokens``), a tool
    call, its result, an answer. The last question is pinned."""
    items = [Item("system", "Be brief.", 10, None, group=0, turn=0, pinned=True, kind="system")]
    for t in range(turns):
        start = len(items)
        last = t == turns - 1
        files = (FilePiece(f"f{t}", f"doc{t}.md", "text/markdown", "text " * file_tokens, file_tokens),) if file_tokens else ()
        calls = ({"id": f"c{t}", "type": "function", "function": {"name": "url_fetch", "arguments": "{}"}},)
        items += [Item("user", f"question {t}", 20, f"u{t}", group=start, turn=start, pinned=last, files=files)]
        if not last:
            items += [Item("assistant", "", 15, f"a{t}", group=start + 1, turn=start, tool_calls=calls),
                      Item("tool", "r" * tool_tokens * 4, tool_tokens, f"t{t}", group=start + 1, turn=start,
                           tool_call_id=f"c{t}"),
                      Item("assistant", f"answer {t}", 25, f"b{t}", group=start + 3, turn=start)]
    return items


def fit(strategies, name, items, budget, store=None, **settings):
    situation = Situation(items=items, budget=budget, count=count, summaries=store or Store(), settings=settings)
    result = strategies[name]().fit(situation)
    if result is not None:
        assert broken_rule(items, result) is None
    return result


def test_the_plugin_registers_the_three_strategies(strategies):
    for name in ("truncate", "compress", "summarize"):
        assert strategies[name].name == name and strategies[name].description
        assert strategies[name].plugin == "bestchat-context"
    registered = []
    bestchat_context.register_context_strategies(register=registered.append)
    assert [cls.name for cls in registered] == ["truncate", "compress", "summarize"]


def test_truncate_keeps_the_newest_whole_turns(strategies):
    items = conversation()
    result = fit(strategies, "truncate", items, 1000)
    assert [item.message_id for item in result.items] == [None, "u3", "a3", "t3", "b3", "u4", "a4", "t4", "b4", "u5"]
    assert result.note == {"dropped": 12} and total(result.items) <= 1000
    assert fit(strategies, "truncate", items, total(items)) is None


def test_compress_shortens_old_tool_outputs_and_files(strategies):
    items = conversation(file_tokens=300)
    result = fit(strategies, "compress", items, 500)
    by_id = {item.message_id: item for item in result.items}
    for t in range(4):  # older than the newest two turns (4, and 5: the pinned one)
        assert by_id[f"t{t}"].text == "[output of url_fetch omitted: 400 tokens; kept by the server]"
        assert by_id[f"t{t}"].text_tokens == count(by_id[f"t{t}"].text) + 4
        piece = by_id[f"u{t}"].files[0]
        assert piece.text is None and piece.note == "omitted here (300 tokens), attached earlier"
        assert piece.tokens == count(f"\n\n[file doc{t}.md: {piece.note}]")
    for t in (4, 5):
        assert by_id[f"u{t}"].files == items[[i.message_id for i in items].index(f"u{t}")].files
    assert result.note["compressed"] == 8
    assert result.note["saved"] == total(items) - total(result.items)
    keep_more = fit(strategies, "compress", items, 500, CONTEXT_COMPRESS_KEEP_TURNS=6)
    assert keep_more is None  # every turn is recent
    assert fit(strategies, "compress", items, 500, CONTEXT_COMPRESS_MIN_TOKENS=350).note["compressed"] == 4  # tools
    assert fit(strategies, "compress", items, 500, CONTEXT_COMPRESS_MIN_TOKENS=400) is None


def test_summarize_makes_reuses_and_refreshes_a_summary(strategies):
    items = conversation(turns=6, tool_tokens=200)  # 260 tokens a turn
    store = Store(tokens=50)
    made = fit(strategies, "summarize", items, 1100, store, CONTEXT_SUMMARY_MAX_TOKENS=100, CONTEXT_SUMMARY_KEEP_SHARE=1.0)
    assert store.calls == [(["u0", "a0", "t0", "b0", "u1", "a1", "t1", "b1"], None)]
    summary = made.items[1]
    assert summary.kind == "summary" and summary.role == "system" and not summary.pinned
    assert summary.text == "summary 0" and summary.text_tokens == 50 + count("Summary of the earlier conversation:\n")
    assert summary.message_id is None and summary.turn == -1 and summary.group not in {i.group for i in items}
    assert [item.message_id for item in made.items[2:]] == [i.message_id for i in items[9:]]
    assert made.note == {"summary_id": "s0", "reused": False, "covered": 8, "made": 1}
    assert total(made.items) <= 1100
    again = fit(strategies, "summarize", items, 1100, store, CONTEXT_SUMMARY_MAX_TOKENS=100, CONTEXT_SUMMARY_KEEP_SHARE=1.0)
    assert again.items == made.items and again.note == {"summary_id": "s0", "reused": True, "covered": 8}
    assert len(store.calls) == 1
    longer = conversation(turns=8, tool_tokens=200)  # two more turns: the summary and what follows no longer fit
    later = fit(strategies, "summarize", longer, 1100, store, CONTEXT_SUMMARY_MAX_TOKENS=100, CONTEXT_SUMMARY_KEEP_SHARE=1.0)
    assert store.calls[1] == (["u2", "a2", "t2", "b2", "u3", "a3", "t3", "b3"], store.stored[0])
    assert later.note["summary_id"] == "s1" and later.note["covered"] == 16
    assert total(later.items) <= 1100


def test_a_new_summary_leaves_room_for_the_next_turns(strategies):
    """With the default share, the turns kept beside a new summary fill at most half the room, so
    the next turn fits with the same summary (reused, not made again)."""
    store = Store(tokens=50)
    made = fit(strategies, "summarize", conversation(turns=6, tool_tokens=200), 1100, store,
               CONTEXT_SUMMARY_MAX_TOKENS=100)
    assert total(made.items) <= 1100 // 2 + 200
    calls = len(store.calls)
    later = fit(strategies, "summarize", conversation(turns=7, tool_tokens=200), 1100, store,
                CONTEXT_SUMMARY_MAX_TOKENS=100)
    assert later.note["reused"] is True and len(store.calls) == calls


def test_summarize_folds_what_does_not_fit_in_one_call(strategies):
    items = conversation(turns=12)
    store = Store(tokens=50)
    result = fit(strategies, "summarize", items, 1400, store, CONTEXT_SUMMARY_MAX_TOKENS=100, CONTEXT_SUMMARY_KEEP_SHARE=1.0)
    assert len(store.calls) == result.note["made"] >= 2
    assert [previous for _, previous in store.calls] == [None, *store.stored[:-1]]
    by_id = {item.message_id: item for item in items}
    for ids, previous in store.calls:  # each call fits the budget with the summary so far
        assert sum(by_id[i].tokens for i in ids) + (previous.tokens if previous else 0) <= 1400 - 100
    assert total(result.items) <= 1400


def test_summarize_does_without_when_no_summary_can_be_made(strategies):
    assert fit(strategies, "summarize", conversation(), 1000, Store(fail=True)) is None
    only_pinned = conversation(turns=1)
    assert fit(strategies, "summarize", only_pinned, 10, Store()) is None  # nothing to summarize
