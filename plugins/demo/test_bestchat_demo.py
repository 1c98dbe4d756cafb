"""The demo provider streams an exact, deterministic reply with no network."""

from __future__ import annotations

import pydantic
import pytest

import bestchat_demo
from bestchat.plugin_api import Finish, Price, ProviderOptions, TextDelta, Usage, get_providers
from bestchat_demo import DemoOptions, DemoProvider

REPLY = 'Hello! I am the offline demo model. You said: "two words". Configure a real provider to get real answers.'


def run(messages, **options):
    return list(DemoProvider().stream("demo", messages, options=DemoOptions(tokens_per_second=0, **options)))


def test_registered_through_its_entry_point(app):
    assert get_providers()["demo"] is DemoProvider
    assert DemoProvider.plugin == "bestchat-demo"
    assert [m.id for m in DemoProvider().models()] == ["demo"]
    assert DemoProvider.needs_key is False


def test_streams_word_sized_deltas_then_usage_and_finish():
    events = run([{"role": "system", "content": "be nice"}, {"role": "user", "content": "two   words"}])
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == REPLY
    assert deltas[:3] == ["Hello!", " I", " am"]
    assert events[-2:] == [Usage(prompt_tokens=4, completion_tokens=len(deltas), cost=0.0), Finish("stop")]


def test_it_is_free():
    assert DemoProvider().price("demo") == Price(0, 0, 0)


def test_replies_to_the_last_user_message_and_reads_content_parts():
    messages = [{"role": "user", "content": "old"}, {"role": "assistant", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "image_url"},
                                             {"type": "text", "text": "words"}]}]
    assert "".join(e.text for e in run(messages) if isinstance(e, TextDelta)) == REPLY


def test_empty_conversation_gets_a_greeting():
    assert bestchat_demo.reply_to([]).startswith("Hello! I am the offline demo model. Say something")


def test_max_tokens_truncates_with_reason_length():
    events = run([{"role": "user", "content": "hi"}], max_tokens=3)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello!", " I", " am"]
    assert events[-1] == Finish("length") and events[-2].completion_tokens == 3


def test_tokens_per_second_paces_the_stream(monkeypatch):
    sleeps = []
    monkeypatch.setattr(bestchat_demo.time, "sleep", sleeps.append)
    events = list(DemoProvider().stream("demo", [{"role": "user", "content": "hi"}],
                                        options=DemoOptions(tokens_per_second=4)))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert sleeps == [0.25] * (len(deltas) - 1)
    sleeps.clear()
    run([{"role": "user", "content": "hi"}])
    assert sleeps == []


def test_accepts_common_options_and_forbids_unknown_ones():
    events = list(DemoProvider().stream("demo", [], options=ProviderOptions(max_tokens=1)))
    assert events[0] == TextDelta("Hello!") and events[-1] == Finish("length")
    with pytest.raises(pydantic.ValidationError):
        DemoOptions(tokens_per_second=-1)
    with pytest.raises(pydantic.ValidationError):
        DemoOptions(speed=3)


@pytest.mark.parametrize("pace", [0.01, 0.5, 10_001])
def test_a_pace_that_would_hold_a_slot_for_hours_is_refused(pace):
    with pytest.raises(pydantic.ValidationError):
        DemoOptions(tokens_per_second=pace)
    assert DemoOptions(tokens_per_second=bestchat_demo.MIN_TOKENS_PER_SECOND).tokens_per_second == 1


def test_the_reply_quotes_a_bounded_number_of_words():
    said = " ".join(f"w{i}" for i in range(5000))
    words = bestchat_demo.reply_to([{"role": "user", "content": said}]).split()
    assert len(words) < bestchat_demo.QUOTE_MAX_WORDS + 30
    assert '"w0' in " ".join(words) and "w999" in words and "w1000" not in words


def test_summarizes_when_the_system_message_asks_for_a_summary_and_sees_attachments():
    summary = run([{"role": "system", "content": "You write the running summary of a conversation."},
                   {"role": "user", "content": "user: first question about tea\n\nassistant: an answer about tea"}])
    text = "".join(e.text for e in summary if isinstance(e, TextDelta))
    assert text == "Summary: user: first question about tea / assistant: an answer about tea"
    seen = run([{"role": "user", "content": [
        {"type": "text", "text": 'look <file name="a.pdf" id="1">\nthree words here\n</file>'},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    text = "".join(e.text for e in seen if isinstance(e, TextDelta))
    assert 'You said: "look". I received a.pdf (3 words of text), an image (image/png).' in text
