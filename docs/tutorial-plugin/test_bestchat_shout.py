"""Tests for bestchat-shout, using the fixtures BestChat ships (app, client, runner...)."""

import bestchat_shout
from bestchat import plugins
from bestchat.providers.base import Finish, TextDelta
from bestchat.testing.plugins import plugin_registered


def test_provider_and_tool_are_registered(app):
    with plugin_registered(bestchat_shout, "bestchat-shout") as record:
        assert record["status"] == "loaded"
        assert plugins.get_providers()["shout"] is bestchat_shout.ShoutProvider
        assert plugins.get_tools()["shout"].function("hello") == "HELLO!"


def test_shouts_the_last_user_message():
    events = list(bestchat_shout.ShoutProvider().stream(
        "loud", [{"role": "user", "content": "hello there."}]))
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["HELLO", " THERE!"]
    assert events[-1] == Finish("stop")
