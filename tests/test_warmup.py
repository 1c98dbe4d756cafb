"""Workers warm the providers in use up before serving (bestchat.providers.warmup): those with
an enabled connection and those needing none; a warm-up that raises is isolated and counted."""

from __future__ import annotations

import logging

from bestchat import plugins
from bestchat.extensions import db
from bestchat.models import ProviderConfig
from bestchat.plugin_api import Finish, Provider, hookimpl
from bestchat.providers.warmup import warm_providers
from bestchat.testing.plugins import plugin_registered

warmed: list[str] = []


class KeyedProvider(Provider):
    name = "keyed"
    default_models = ("k",)

    @classmethod
    def warm_up(cls):
        warmed.append(cls.name)

    def stream(self, model, messages, *, options=None, tools=None):
        yield Finish("stop")


class KeylessProvider(KeyedProvider):
    name = "keyless"
    needs_key = False


class BrokenWarmUp(KeyedProvider):
    name = "broken-warm-up"
    needs_key = False

    @classmethod
    def warm_up(cls):
        raise RuntimeError("cannot load the tables")


class Plugin:
    @hookimpl
    def register_providers(self, register):
        register(KeyedProvider)
        register(KeylessProvider)
        register(BrokenWarmUp)


def test_only_providers_in_use_warm_up_and_a_failure_is_counted(app, caplog):
    warmed.clear()
    with app.app_context(), plugin_registered(Plugin(), "warm-plugin"):
        before = plugins.failure_counts().get("warm-plugin", 0)
        with caplog.at_level(logging.ERROR, "bestchat.providers.warmup"):
            assert warm_providers() == ["broken-warm-up"]
        assert warmed == ["keyless"]  # "keyed" has no connection yet
        assert plugins.failure_counts()["warm-plugin"] == before + 1
        assert "broken-warm-up" in plugins.get_providers()  # still registered: it warms at its first answer
        assert "broken-warm-up (plugin warm-plugin): warm_up raised" in caplog.text
        (logged,) = [record for record in caplog.records if record.exc_info]
        assert isinstance(logged.exc_info[1], RuntimeError)  # the traceback is logged
        assert "cannot load the tables" in caplog.text

        db.session.add(ProviderConfig(user_id=None, provider="keyed", name="team", enabled=False))
        db.session.commit()
        warmed.clear()
        warm_providers()
        assert warmed == ["keyless"]  # a disabled connection does not count

        db.session.add(ProviderConfig(user_id=None, provider="keyed", name="team 2"))
        db.session.commit()
        warmed.clear()
        warm_providers()
        assert warmed == ["keyed", "keyless"]
