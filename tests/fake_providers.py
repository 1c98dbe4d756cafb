"""Tiny in-process providers for the provider-config, registry and failover tests.

``installed()`` registers them as a plugin (through the real plugin manager, next to the
first-party plugins) for the duration of a ``with`` block.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ClassVar, Iterator

from pydantic import Field

from bestchat.hookspecs import hookimpl
from bestchat.providers.base import (
    Event, Finish, Provider, ProviderAuthError, ProviderOptions, TextDelta,
)
from bestchat.testing.plugins import plugin_registered


class KeyedOptions(ProviderOptions):
    region: str | None = Field(None, max_length=20, description="A provider-specific option")


class KeyedProvider(Provider):
    """Needs a key; answers with the name of the key's last four characters. A key that does
    not start with ``sk-good`` is refused with an error that (badly) echoes it."""

    name = "keyed"
    label = "Keyed"
    default_models = ("k1", "k2")
    Options = KeyedOptions
    calls: ClassVar[list[dict[str, Any]]] = []

    def stream(self, model, messages, *, options=None, tools=None) -> Iterator[Event]:
        KeyedProvider.calls.append({"model": model, "options": options, "key": self.settings.api_key})
        if not (self.settings.api_key or "").startswith("sk-good"):
            raise ProviderAuthError(f"Incorrect API key provided: {self.settings.api_key}", status=401)
        yield TextDelta(f"hello from {model}")
        yield Finish()


class OtherProvider(KeyedProvider):
    """A second keyed provider, to resolve fallbacks across providers."""

    name = "other"
    label = "Other"
    default_models = ("o1",)


class LocalProvider(Provider):
    """Keyless, like the demo provider: always available."""

    name = "local"
    needs_key = False
    default_models = ("tiny",)

    def stream(self, model, messages, *, options=None, tools=None) -> Iterator[Event]:
        yield TextDelta("local")
        yield Finish()


class SelfHostedProvider(LocalProvider):
    """Keyless but needs a base URL, so only usable through a config."""

    name = "selfhosted"
    needs_base_url = True
    default_models = ()


class ScriptedProvider(Provider):
    """Plays ``script``: events are yielded, exceptions raised, in order."""

    name = "scripted"
    needs_key = False

    def __init__(self, script: list[Event | Exception], settings=None):
        super().__init__(settings)
        self.script = script
        self.started = 0

    def stream(self, model, messages, *, options=None, tools=None) -> Iterator[Event]:
        self.started += 1
        for step in self.script:
            if isinstance(step, Exception):
                raise step
            yield step


FAKES = (KeyedProvider, OtherProvider, LocalProvider, SelfHostedProvider)


class _FakesPlugin:
    @hookimpl
    def register_providers(self, register):
        for cls in FAKES:
            register(cls)


@contextmanager
def installed() -> Iterator[None]:
    """The fake providers are installed inside the block (plugins must be loaded: make an app)."""
    KeyedProvider.calls.clear()
    with plugin_registered(_FakesPlugin(), "test-fake-providers") as record:
        assert record["status"] == "loaded", record
        yield
