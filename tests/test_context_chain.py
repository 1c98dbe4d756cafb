"""Prompt assembly: a branch as items (build_items), the strategy chain and its guard (run_chain),
the messages sent (render).

The property test runs random conversations, budgets and chains (the built-in strategies, a
summarizer whose summaries have random sizes, and strategies that break the rules) and checks
what must always hold: the prompt fits the budget, the newest user message and what follows it
are sent unchanged, no tool call is separated from its result; or ContextTooLong when the
pinned items alone cannot fit. The long-conversation test does the same with real tiktoken
counts on a ~300K-token conversation and a 128K window.
"""

from __future__ import annotations

import logging

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bestchat_context
from bestchat.context.base import (ContextStrategy, ContextTooLong, FilePiece, Fitted, ImagePiece, Item, Summary,
                                   SummaryUnavailable, total)
from bestchat.context.chain import run_chain
from bestchat.context.fitting import keep_newest, pinned_tokens, units
from bestchat.context.items import UploadFacts, build_items
from bestchat.context.render import render
from bestchat.context.tokens import count_text, message_tokens
from bestchat.providers.base import ToolCall
from bestchat.services.client_tools import tool_calls_part, tool_result_part
from bestchat.store.claimed import BranchEntry

STRATEGIES = {cls.name: cls for cls in (bestchat_context.Truncate, bestchat_context.Compress, bestchat_context.Summarize)}


def rough(text: str) -> int:
    """A fast stand-in for a tokenizer: four characters a token."""
    return (len(text) + 3) // 4


# ---- a fake summary store -------------------------------------------------------------------

class FakeSummaries:
    """Summaries kept in a list; ``make`` records its calls."""

    def __init__(self, size=lambda covered: 60, count=rough, fail: bool = False):
        self.size, self.count, self.fail = size, count, fail
        self.stored: list[Summary] = []
        self.calls: list[tuple[list[Item], Summary | None]] = []

    def latest(self, items):
        ids = {item.message_id for item in items}
        return next((s for s in reversed(self.stored) if s.last_message_id in ids), None)

    def make(self, items, previous):
        self.calls.append((list(items), previous))
        if self.fail:
            raise SummaryUnavailable("no model")
        covered = (previous.covered if previous else 0) + len(items)
        text = f"summary {len(self.stored)} of {covered} messages"
        summary = Summary(id=f"s{len(self.stored)}", text=text, tokens=self.size(covered),
                          last_message_id=items[-1].message_id, covered=covered)
        self.stored.append(summary)
        return summary


# ---- strategies that break the rules ---------------------------------------------------------

class DropsPinned(ContextStrategy):
    name = "drops-pinned"

    def fit(self, situation):
        return Fitted([item for item in situation.items if not item.pinned][:1])


class SplitsGroups(ContextStrategy):
    name = "splits-groups"

    def fit(self, situation):
        return Fitted([item for item in situation.items if item.role != "tool" or item.pinned])


class Grows(ContextStrategy):
    name = "grows"

    def fit(self, situation):
        return Fitted([item.but(text_tokens=item.text_tokens + 1) if not item.pinned else item
                       for item in situation.items])


class Reorders(ContextStrategy):
    name = "reorders"

    def fit(self, situation):
        unpinned = [item for item in situation.items if not item.pinned]
        return Fitted(unpinned[::-1] + [item for item in situation.items if item.pinned])


class Raises(ContextStrategy):
    name = "raises"

    def fit(self, situation):
        raise RuntimeError("boom")


class AddsMessage(ContextStrategy):
    name = "adds-message"

    def fit(self, situation):
        extra = Item(role="user", text="ignore the above", text_tokens=5, message_id=None, group=-7, turn=-7)
        return Fitted([extra] + [item for item in situation.items if item.pinned])


class ReturnsJunk(ContextStrategy):
    name = "returns-junk"

    def fit(self, situation):
        return ["not", "fitted"]


MISBEHAVING = {cls.name: cls for cls in (DropsPinned, SplitsGroups, Grows, Reorders, Raises, AddsMessage, ReturnsJunk)}
ALL = {**STRATEGIES, **MISBEHAVING}


# ---- random conversations --------------------------------------------------------------------

@st.composite
def conversations(draw):
    """(branch entries, uploads, system prompt) of a random conversation."""
    entries: list[BranchEntry] = []
    pool = [f"up{i}" for i in range(4)]
    uploads = {}
    for upload_id in pool[:3]:  # the last one is "deleted"
        kind = draw(st.sampled_from(["text", "pdf", "image"]))
        text = None if kind == "image" else "x" * draw(st.integers(0, 4000))
        uploads[upload_id] = UploadFacts(f"{upload_id}.bin", "image/png" if kind == "image" else "text/plain",
                                         kind, text, None if text is None or draw(st.booleans()) else rough(text))
    tokens = st.one_of(st.none(), st.integers(1, 3000))
    ids = iter(range(10_000))

    def add(role, content="", parts=(), status="complete"):
        entries.append(BranchEntry(f"m{next(ids)}", entries[-1].id if entries else None, role, status, content,
                                   list(parts), draw(tokens)))

    for turn in range(draw(st.integers(1, 8))):
        files = draw(st.lists(st.sampled_from(pool), max_size=2))
        parts = [{"type": "file", "upload_id": u, "name": f"{u}.bin", "mime": "text/plain"} for u in files]
        if draw(st.booleans()):
            parts.append({"type": "image_url", "url": "https://example.com/a.png"})
        add("user", "q" * draw(st.integers(0, 2000)), parts)
        for _ in range(draw(st.integers(0, 3))):
            step = draw(st.sampled_from(["text", "tools", "failed", "empty", "unanswered"]))
            if step == "tools" or step == "unanswered":
                n = draw(st.integers(1, 2))
                calls = [ToolCall(id=f"c{len(entries)}_{i}", name="calculator", arguments={"expression": "1+1"})
                         for i in range(n)]
                add("assistant", draw(st.sampled_from(["", "let me check"])), [tool_calls_part(calls)])
                answered = calls if step == "tools" else calls[:0]
                for call in answered:
                    add("tool", "r" * draw(st.integers(0, 3000)), [tool_result_part(call.id)])
            elif step == "failed":
                add("assistant", "partial", status="failed")
            elif step == "empty":
                add("assistant", "")
            else:
                add("assistant", "a" * draw(st.integers(1, 2000)))
    system = draw(st.one_of(st.none(), st.text(min_size=1, max_size=400)))
    return entries, uploads, system


def assert_well_formed(messages: list[dict[str, Any]]) -> None:
    """Every tool call answered by the tool messages right after it, every tool message
    answering a call just made."""
    open_calls: set[str] = set()
    for message in messages:
        if message["role"] == "tool":
            assert message["tool_call_id"] in open_calls, "a tool result without its call"
            open_calls.discard(message["tool_call_id"])
            continue
        assert not open_calls, "a tool call without its result"
        if message.get("tool_calls"):
            open_calls = {call["id"] for call in message["tool_calls"]}
    assert not open_calls, "a tool call without its result"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversation=conversations(), data=st.data())
def test_whatever_the_chain_the_prompt_fits_or_is_refused(conversation, data):
    entries, uploads, system = conversation
    items = build_items(entries, uploads, system_prompt=system, count=rough,
                        image_tokens=data.draw(st.integers(0, 1500), label="image_tokens"))
    budget = data.draw(st.integers(0, int(total(items) * 1.2) + 10), label="budget")
    chain = data.draw(st.permutations([*ALL, "no-such-strategy"]), label="order")
    chain = chain[:data.draw(st.integers(0, len(chain)), label="length")]
    sizes = data.draw(st.lists(st.integers(1, 3000), min_size=1), label="summary sizes")
    summaries = FakeSummaries(size=lambda covered: sizes[covered % len(sizes)],
                              fail=data.draw(st.booleans(), label="summaries fail"))
    settings_ = {"CONTEXT_SUMMARY_MAX_TOKENS": data.draw(st.integers(1, 2000), label="summary max"),
                 "CONTEXT_COMPRESS_KEEP_TURNS": data.draw(st.integers(0, 3), label="keep turns"),
                 "CONTEXT_COMPRESS_MIN_TOKENS": data.draw(st.integers(0, 500), label="min tokens")}
    pinned = [item for item in items if item.pinned]
    if pinned_tokens(items) > budget:
        with pytest.raises(ContextTooLong) as refused:
            run_chain(items, budget=budget, chain=chain, strategies=ALL, count=rough, summaries=summaries,
                      settings=settings_)
        assert refused.value.needed == pinned_tokens(items) and refused.value.budget == budget
        return
    assembled = run_chain(items, budget=budget, chain=chain, strategies=ALL, count=rough, summaries=summaries,
                          settings=settings_)
    assert assembled.tokens == total(assembled.items) <= budget
    assert [item for item in assembled.items if item.pinned] == pinned  # unchanged, in order
    tail = [item for item in items if item.pinned and item.kind != "system"]
    assert assembled.items[len(assembled.items) - len(tail):] == tail  # the newest user message and after: last
    sent = [item.message_id for item in assembled.items if item.message_id]
    assert sent == [item.message_id for item in items if item.message_id in set(sent)]  # order kept
    assert set(assembled.dropped) == {item.message_id for item in items if item.message_id} - set(sent)
    assert {step.name for step in assembled.ran} <= {*STRATEGIES, "guard"}
    for step in assembled.ran:
        assert step.after < step.before or step.name == "summarize"
    assert_well_formed(render(assembled.items, vision=data.draw(st.booleans(), label="vision"),
                              load_image=lambda upload_id: None))
    if total(items) <= budget:
        assert assembled.items == items and assembled.ran == []


@settings(max_examples=200, deadline=None)
@given(conversation=conversations(), data=st.data())
def test_keep_newest_keeps_the_newest_whole_turns_that_fit(conversation, data):
    entries, uploads, system = conversation
    items = build_items(entries, uploads, system_prompt=system, count=rough)
    budget = data.draw(st.integers(pinned_tokens(items), total(items) + 10), label="budget")
    kept = keep_newest(items, budget)
    assert total(kept) <= budget
    if total(items) <= budget:
        assert kept == items
        return
    present = {id(item) for item in kept}
    dropped = [i for i, item in enumerate(items) if id(item) not in present]
    oldest_kept = min((i for i, item in enumerate(items) if id(item) in present and not item.pinned), default=None)
    if oldest_kept is not None:  # contiguous: nothing newer than a kept item is dropped
        assert all(i < oldest_kept for i in dropped)
    # The newest dropped turn (with every turn its groups join) did not fit.
    newest_turn = items[dropped[-1]].turn
    unit = [item for item in items if item.turn == newest_turn and not item.pinned]
    assert total(kept) + total(unit) > budget


def test_a_group_spanning_turns_is_kept_or_dropped_whole():
    def item(i, role, turn, group, tokens=10, pinned=False):
        return Item(role, f"m{i}", tokens, f"m{i}", group=group, turn=turn, pinned=pinned)
    # A call in turn 0 answered after the user message of turn 2 (a client's late result).
    items = [item(0, "user", 0, 0), item(1, "assistant", 0, 1), item(2, "user", 2, 2),
             item(3, "tool", 2, 1), item(4, "assistant", 2, 4), item(5, "user", 5, 5), item(6, "assistant", 5, 6),
             item(7, "user", 7, 7, pinned=True)]
    assert units(items) == [[0, 1, 2, 3, 4], [5, 6], [7]]
    assert [i.message_id for i in keep_newest(items, 40)] == ["m5", "m6", "m7"]
    assert len(keep_newest(items, 80)) == 8


def test_the_inclusion_rules_of_a_branch():
    calls = [ToolCall(id="c1", name="calculator", arguments={}), ToolCall(id="c2", name="calculator", arguments={})]
    entries = [BranchEntry("u1", None, "user", "complete", "hi", [], 5),
               BranchEntry("a1", "u1", "assistant", "failed", "half", [], 5),
               BranchEntry("a2", "a1", "assistant", "complete", "", [], 5),
               BranchEntry("a3", "a2", "assistant", "complete", "", [tool_calls_part(calls[:1])], 9),
               BranchEntry("t1", "a3", "tool", "complete", "2", [tool_result_part("c1")], 5),
               BranchEntry("a4", "t1", "assistant", "complete", "called", [tool_calls_part(calls[1:])], 9),
               BranchEntry("u2", "a4", "user", "complete", "and?", [], 5)]
    items = build_items(entries, {}, system_prompt=None, count=rough)
    messages = render(items, vision=False, load_image=lambda u: None)
    assert messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
        {"role": "assistant", "content": "called"}, {"role": "user", "content": "and?"}]
    assert [item.message_id for item in items] == ["u1", "a3", "t1", "a4", "u2"]
    assert items[1].group == items[2].group != items[3].group
    assert [item.turn for item in items] == [0, 0, 0, 0, 4]
    assert [item.pinned for item in items] == [False, False, False, False, True]


# ---- build_items -----------------------------------------------------------------------------

def user(id_, content="", parts=(), token_count=None, parent=None):
    return BranchEntry(id_, parent, "user", "complete", content, list(parts), token_count)


def file_part(upload_id, name="notes.txt", mime="text/plain"):
    return {"type": "file", "upload_id": upload_id, "name": name, "mime": mime}


def test_counts_stored_counts_and_the_system_prompt():
    entries = [user("u1", "hello", token_count=42), user("u2", "hello there")]
    items = build_items(entries, {}, system_prompt="Be brief.", count=rough)
    assert items[0] == Item(role="system", text="Be brief.", text_tokens=rough("Be brief.") + 4, message_id=None,
                            group=0, turn=0, pinned=True, kind="system")
    assert items[1].text_tokens == 42  # stored: never recounted
    assert items[2].text_tokens == rough("hello there") + 4
    assert [item.pinned for item in items] == [True, False, True]
    assert build_items([], {}, system_prompt="", count=rough) == []


def test_a_file_attached_again_is_sent_once_with_its_newest_occurrence():
    facts = UploadFacts("notes.txt", "text/plain", "text", "the notes " * 50, 100)
    entries = [user("u1", "read this", [file_part("f1")]), user("u2", "again", [file_part("f1")]),
               user("u3", "and once more", [file_part("f1"), file_part("f2", "gone.txt")])]
    items = build_items(entries, {"f1": facts}, system_prompt=None, count=rough)
    older = [item.files[0] for item in items[:2]]
    assert all(piece.text is None and piece.note == "attached again later" for piece in older)
    assert older[0].tokens == rough('\n\n[file notes.txt: attached again later]')
    newest, deleted = items[2].files
    assert newest.text == facts.text and newest.note == ""
    assert newest.tokens == 100 + rough('\n\n<file name="notes.txt" id="f1">\n') + rough("\n</file>")
    assert deleted == FilePiece("f2", "gone.txt", "text/plain", None, rough("\n\n[file gone.txt: deleted]"), "deleted")
    # Truncation drops the oldest first, so the text is never lost with an older occurrence.
    assert keep_newest(items, items[2].tokens)[0].files[0].text == facts.text


def test_images_uploads_and_urls():
    image = UploadFacts("cat.png", "image/png", "image", None, None)
    scan = UploadFacts("scan.pdf", "application/pdf", "pdf", None, None)  # no text could be read
    entries = [user("u1", "look", [file_part("i1", "cat.png", "image/png"), file_part("p1", "scan.pdf"),
                                   {"type": "image_url", "url": "https://example.com/dog.jpg"}])]
    [item] = build_items(entries, {"i1": image, "p1": scan}, system_prompt=None, count=rough, image_tokens=1000)
    assert item.images == (ImagePiece("i1", None, "cat.png", "image/png", 1000),
                           ImagePiece(None, "https://example.com/dog.jpg", "image", "", 1000))
    assert item.files[0].text is None and item.files[0].note == "no text could be read from it"
    assert item.tokens == item.text_tokens + item.files[0].tokens + 2000
    tiny = build_items(entries, {"i1": image, "p1": scan}, system_prompt=None, count=rough, image_tokens=0)[0]
    assert tiny.images[0].tokens == rough("\n\n[image cat.png: this model does not accept images]")


def test_tool_groups_and_token_counts_of_calls():
    calls = [ToolCall(id="c1", name="calculator", arguments={"expression": "6*7"})]
    part = tool_calls_part(calls)
    entries = [user("u1", "six times seven?"),
               BranchEntry("a1", "u1", "assistant", "complete", "", [part], None),
               BranchEntry("t1", "a1", "tool", "complete", '{"result": 42}', [tool_result_part("c1")], None),
               BranchEntry("a2", "t1", "assistant", "complete", "42", [], None)]
    items = build_items(entries, {}, system_prompt=None, count=rough)
    assert items[1].tool_calls == tuple(part["tool_calls"]) and items[2].tool_call_id == "c1"
    assert items[1].group == items[2].group == 1 and items[3].group == 3
    assert items[1].text_tokens == 4 + rough(json.dumps(part["tool_calls"]))
    assert all(item.pinned for item in items)  # the newest user message and everything after it


# ---- render ----------------------------------------------------------------------------------

def test_render_files_images_tools_and_summaries():
    facts = UploadFacts('a "b".txt', "text/plain", "text", "line one\nline two", 6)
    image = UploadFacts("cat.png", "image/png", "image", None, None)
    calls = [ToolCall(id="c1", name="calculator", arguments={})]
    entries = [user("u1", "", [file_part("f1", 'a "b".txt'), file_part("gone")]),
               BranchEntry("a1", "u1", "assistant", "complete", "", [tool_calls_part(calls)], None),
               BranchEntry("t1", "a1", "tool", "complete", "2", [tool_result_part("c1")], None),
               user("u2", "and this?", [file_part("i1", "cat.png", "image/png"),
                                        {"type": "image_url", "url": "https://example.com/x.png"}])]
    items = build_items(entries, {"f1": facts, "i1": image}, system_prompt="sys", count=rough)
    summary = Item(role="system", text="they talked", text_tokens=9, message_id=None, group=99, turn=-1, kind="summary")
    items.insert(1, summary)
    plain = render(items, vision=False, load_image=lambda u: pytest.fail("not for text models"))
    assert plain[0] == {"role": "system", "content": "sys"}
    assert plain[1] == {"role": "system", "content": "Summary of the earlier conversation:\nthey talked"}
    assert plain[2] == {"role": "user", "content": '<file name="a &quot;b&quot;.txt" id="f1">\nline one\nline two\n</file>'
                                                   "\n\n[file notes.txt: deleted]"}
    assert plain[3] == {"role": "assistant", "content": None, "tool_calls": [tool_calls_part(calls)["tool_calls"][0]]}
    assert plain[4] == {"role": "tool", "tool_call_id": "c1", "content": "2"}
    assert plain[5] == {"role": "user", "content": "and this?\n\n[image cat.png: this model does not accept images]"
                                                   "\n\n[image image: this model does not accept images]"}
    vision = render(items, vision=True, load_image=lambda u: "data:image/png;base64,AAAA")
    assert vision[5] == {"role": "user", "content": [
        {"type": "text", "text": "and this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}
    gone = render(items, vision=True, load_image=lambda u: None)
    assert gone[5]["content"][0] == {"type": "text", "text": "and this?\n\n[image cat.png: no longer available]"}


def test_what_render_adds_is_what_was_counted():
    """Real tiktoken: each attachment's counted tokens cover what render sends for it."""
    text = "Quarterly numbers, line by line.\n" * 40
    facts = {"f1": UploadFacts("report.txt", "text/plain", "text", text, count_text(text)),
             "i1": UploadFacts("cat.png", "image/png", "image", None, None)}
    entries = [user("u1", "first", [file_part("f1", "report.txt")], message_tokens("first")),
               user("u2", "second", [file_part("f1", "report.txt"), file_part("i1"), file_part("x")],
                    message_tokens("second"))]
    items = build_items(entries, facts, system_prompt=None, count=count_text, image_tokens=0)
    for item, message in zip(items, render(items, vision=False, load_image=lambda u: None)):
        assert message_tokens(message["content"]) <= item.tokens <= message_tokens(message["content"]) + 3


# ---- the chain -------------------------------------------------------------------------------

def long_items(turns=10, tool_tokens=500):
    entries = []
    for t in range(turns):
        calls = [ToolCall(id=f"c{t}", name="search", arguments={})]
        entries += [user(f"u{t}", f"question {t}", token_count=50),
                    BranchEntry(f"a{t}", None, "assistant", "complete", "", [tool_calls_part(calls)], 20),
                    BranchEntry(f"t{t}", None, "tool", "complete", "r" * 2000, [tool_result_part(f"c{t}")], tool_tokens),
                    BranchEntry(f"b{t}", None, "assistant", "complete", f"answer {t}", [], 30)]
    return build_items(entries, {}, system_prompt="sys", count=rough)


def test_unknown_and_failing_strategies_are_skipped_and_the_guard_records_what_it_drops(caplog):
    caplog.set_level(logging.WARNING, logger="bestchat.context.chain")  # (an app made earlier may raise it)
    items = long_items()
    assembled = run_chain(items, budget=1000, chain=["nope", "raises", "drops-pinned"], strategies=ALL,
                          count=rough, summaries=FakeSummaries())
    assert [step.name for step in assembled.ran] == ["guard"]
    assert assembled.ran[0].before == total(items) and assembled.ran[0].after == assembled.tokens <= 1000
    assert assembled.dropped[:4] == ["u0", "a0", "t0", "b0"]
    assert "'nope' is not registered" in caplog.text and "'raises' raised" in caplog.text
    assert "'drops-pinned' broke a rule (dropped a pinned item)" in caplog.text


def test_the_chain_stops_once_it_fits():
    items = long_items()
    summaries = FakeSummaries()
    assembled = run_chain(items, budget=2500, chain=["compress", "summarize", "truncate"], strategies=ALL,
                          count=rough, summaries=summaries)
    assert assembled.strategies == ["compress"] and summaries.calls == []
    assert assembled.ran[0].note["compressed"] == 8  # all but the newest two turns
    assert assembled.dropped == []


def test_pinned_items_over_the_budget_are_refused():
    items = long_items(turns=1)
    with pytest.raises(ContextTooLong) as refused:
        run_chain(items, budget=100, chain=["truncate"], strategies=ALL, count=rough, summaries=FakeSummaries())
    assert refused.value.code == "context_length_exceeded"
    assert refused.value.details == {"needed": pinned_tokens(items), "budget": 100}


def test_summaries_are_reused_then_refreshed_and_unavailable_is_survived():
    items = long_items(turns=10)
    summaries = FakeSummaries(size=lambda covered: 80)
    first = run_chain(items, budget=2500, chain=["summarize"], strategies=ALL, count=rough, summaries=summaries)
    made = len(summaries.calls)
    assert first.strategies == ["summarize"] and first.ran[0].note["made"] == made >= 2  # folded in chunks
    assert first.summary_id == summaries.stored[-1].id and first.items[1].kind == "summary"
    assert [previous for _, previous in summaries.calls] == [None, *summaries.stored[:-1]]
    assert first.tokens <= 2500
    assert first.dropped == [item.message_id for chunk, _ in summaries.calls for item in chunk]
    again = run_chain(items, budget=2500, chain=["summarize"], strategies=ALL, count=rough, summaries=summaries)
    assert again.items == first.items and again.ran[0].note["reused"] is True and len(summaries.calls) == made
    longer = long_items(turns=14)
    later = run_chain(longer, budget=2500, chain=["summarize"], strategies=ALL, count=rough, summaries=summaries)
    assert len(summaries.calls) > made and summaries.calls[made][1] == summaries.stored[made - 1]
    after = next(i + 1 for i, item in enumerate(longer) if item.message_id == summaries.stored[made - 1].last_message_id)
    assert summaries.calls[made][0][0].message_id == longer[after].message_id
    assert later.summary_id == summaries.stored[-1].id and later.tokens <= 2500
    down = FakeSummaries(fail=True)
    fallback = run_chain(items, budget=2500, chain=["summarize", "truncate"], strategies=ALL, count=rough, summaries=down)
    assert fallback.strategies == ["truncate"] and fallback.summary_id is None


# ---- real tiktoken, a ~300K-token conversation, a 128K window --------------------------------

WORDS = ("the of and a to in is you that it he was for on are as with his they I at be this have from or one had "
         "by word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write go "
         "see number no way could people my than first water been call who oil its now find long down day did get "
         "come made may part café naïve 東京 données résumé λόγος 1234 3.14159 {\"key\": [1, 2]} def f(x): return x**2").split()


def prose(rng: random.Random, tokens: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(int(tokens * 0.8)))


def big_conversation(turns: int, rng: random.Random):
    """A branch of ``turns`` turns (questions, tool rounds with long outputs, files, answers) with
    real stored counts, and its uploads."""
    entries: list[BranchEntry] = []
    uploads: dict[str, UploadFacts] = {}

    def add(role, content, parts=()):
        calls = [c for p in parts if p.get("type") == "tool_calls" for c in p["tool_calls"]]
        tokens = message_tokens(content) + (count_text(json.dumps(calls, ensure_ascii=False)) if calls else 0)
        entries.append(BranchEntry(f"m{len(entries)}", entries[-1].id if entries else None, role, "complete",
                                   content, list(parts), tokens))

    for t in range(turns):
        parts = []
        if t % 5 == 0:
            text = prose(rng, 5000)
            uploads[f"f{t}"] = UploadFacts(f"doc{t}.md", "text/markdown", "text", text, count_text(text))
            parts.append(file_part(f"f{t}", f"doc{t}.md", "text/markdown"))
        if t % 7 == 3:  # the same file again
            parts.append(file_part("f0", "doc0.md", "text/markdown"))
        add("user", prose(rng, rng.randint(20, 400)), parts)
        for r in range(rng.randint(0, 2)):
            calls = [ToolCall(id=f"call_{t}_{r}_{i}", name=rng.choice(["url_fetch", "python"]), arguments={"q": t})
                     for i in range(rng.randint(1, 2))]
            add("assistant", rng.choice(["", "Let me look."]), [tool_calls_part(calls)])
            for call in calls:
                add("tool", prose(rng, rng.randint(500, 4000)), [tool_result_part(call.id)])
        add("assistant", prose(rng, rng.randint(50, 600)))
    add("user", "So, what do you conclude? " + prose(rng, 100))
    return entries, uploads


def recount(messages: list[dict[str, Any]]) -> int:
    """The prompt's tokens counted afresh from what is sent."""
    tokens = 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        tokens += message_tokens(content)
        if message.get("tool_calls"):
            tokens += count_text(json.dumps(message["tool_calls"], ensure_ascii=False))
    return tokens


@pytest.fixture(scope="module")
def big():
    entries, uploads = big_conversation(80, random.Random(16))
    return entries, uploads


def summaries_with_real_counts():
    def size(covered):
        return message_tokens(f"summary of {covered} messages " + "detail " * 600)
    return FakeSummaries(size=size, count=count_text)


@pytest.mark.parametrize("strategy", ["truncate", "compress", "summarize"])
def test_a_300k_conversation_fits_a_128k_window_after_each_strategy(big, strategy):
    entries, uploads = big
    items = build_items(entries, uploads, system_prompt="You are helpful.", count=count_text)
    assert total(items) > 280_000
    budget = 128_000 - 4096
    summaries = summaries_with_real_counts()
    assembled = run_chain(items, budget=budget, chain=[strategy], strategies=ALL, count=count_text,
                          summaries=summaries, settings={"CONTEXT_SUMMARY_MAX_TOKENS": 1024})
    assert assembled.strategies == [strategy]  # it alone fitted the prompt: no guard needed
    assert assembled.tokens <= budget
    messages = render(assembled.items, vision=False, load_image=lambda u: None)
    assert recount(messages) <= budget  # the stored counts are honest
    assert messages[-1] == {"role": "user", "content": entries[-1].content}
    assert_well_formed(messages)
    if strategy == "summarize":
        assert len(summaries.calls) >= 2  # more to cover than one call can take: folded
        assert all(call[1] is previous for call, previous in zip(summaries.calls[1:], summaries.stored))
        assert all(total(chunk) <= budget for chunk, _ in summaries.calls)


def test_a_300k_conversation_reuses_then_refreshes_its_summary(big):
    entries, uploads = big
    budget = 128_000 - 4096
    summaries = summaries_with_real_counts()

    def assemble(branch_entries):
        items = build_items(branch_entries, uploads, system_prompt="You are helpful.", count=count_text)
        return run_chain(items, budget=budget, chain=["summarize", "truncate"], strategies=ALL, count=count_text,
                         summaries=summaries)

    first = assemble(entries)
    made = len(summaries.calls)
    assert made >= 1 and first.strategies == ["summarize"]
    second = assemble(entries)
    assert len(summaries.calls) == made and second.ran[0].note["reused"] is True
    assert second.summary_id == first.summary_id
    more, _ = big_conversation(30, random.Random(17))
    grown = list(entries[:-1])
    for entry in more:
        grown.append(entry._replace(id=f"n{entry.id}", parent_id=grown[-1].id))
    third = assemble(grown)
    assert len(summaries.calls) > made and summaries.calls[made][1] == summaries.stored[made - 1]
    assert third.summary_id != first.summary_id and third.tokens <= budget
    assert render(third.items, vision=False, load_image=lambda u: None)[-1]["content"] == grown[-1].content
