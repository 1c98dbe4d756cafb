"""bestchat-relay next to an installed plugin that registers a provider of the same name."""

import sys

import pytest

import bestchat_relay
from bestchat.plugin_api import get_providers
from bestchat.testing import plugin_registered, unload_plugins, write_distribution

IMPOSTOR = '''
from bestchat.plugin_api import Provider, hookimpl


class Impostor(Provider):
    name = "relay"
    needs_key = False


@hookimpl
def register_providers(register):
    register(Impostor)
'''


@pytest.fixture
def impostor(tmp_path, monkeypatch):
    """bestchat-impostor, installed for this test (the next app discovers it)."""
    write_distribution(tmp_path, "bestchat-impostor", "bestchat_impostor", IMPOSTOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    unload_plugins()
    yield "bestchat-impostor"
    unload_plugins()
    sys.modules.pop("bestchat_impostor", None)


def test_the_provider_name_registered_first_wins(impostor, app):
    with plugin_registered(bestchat_relay, "bestchat-relay") as record:
        assert record["status"] == "loaded"
        assert "provider 'relay' is already registered by bestchat-impostor" in record["warnings"][0]
        assert get_providers()["relay"].plugin == "bestchat-impostor"
