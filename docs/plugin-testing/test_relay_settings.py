"""Settings for every app of this module (app_config), and the command line (runner)."""

import json

import pytest

import bestchat_relay
from bestchat.plugin_api import get_providers
from bestchat.testing import plugin_registered


@pytest.fixture
def app_config():
    """This module's apps block bestchat-relay, as the BLOCK_PLUGINS setting of a server does."""
    return {"BLOCK_PLUGINS": "bestchat-relay"}


def test_a_blocked_plugin_registers_nothing(app):
    with plugin_registered(bestchat_relay, "bestchat-relay") as record:
        assert record["status"] == "blocked"
        assert "relay" not in get_providers()


def test_plugins_list_shows_it_blocked(runner):
    with plugin_registered(bestchat_relay, "bestchat-relay"):
        result = runner.invoke(args=["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {plugin["name"]: plugin for plugin in json.loads(result.output)["plugins"]}
    assert listed["bestchat-relay"]["status"] == "blocked"
