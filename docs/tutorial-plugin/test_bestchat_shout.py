"""Tests for bestchat-shout, with the fixtures and helpers BestChat ships."""

import bestchat_shout
from bestchat.plugin_api import Finish, TextDelta, get_providers, get_tools
from bestchat.testing import plugin_registered, send_and_wait


def test_provider_and_tool_are_registered(app):
    with plugin_registered(bestchat_shout, "bestchat-shout") as record:
        assert record["status"] == "loaded"
        assert get_providers()["shout"] is bestchat_shout.ShoutProvider
        assert get_tools()["shout"].function("hello") == "HELLO!"


def test_shouts_the_last_user_message():
    events = list(bestchat_shout.ShoutProvider().stream(
        "loud", [{"role": "user", "content": "hello there."}]))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["HELLO", " THERE!"]
    assert events[-1] == Finish("stop")


def test_a_chat_with_shout_loud(client, user):
    with plugin_registered(bestchat_shout, "bestchat-shout"):
        answer = send_and_wait(client, "hello there.", model="shout/loud")
    assert answer["status"] == "complete"
    assert answer["content"] == "HELLO THERE!"
