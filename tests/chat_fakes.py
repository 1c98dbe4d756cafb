"""Helpers for the chat streaming tests: a provider the test feeds by hand, a filter plugin,
and waiting for in-process jobs.

``GatedProvider`` (model ``gated/g``) yields one text delta per string the test puts in
``GatedProvider.feed``, raises an exception put there, and ends at ``None``; so a test can
stop a generation exactly between two chunks.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import gevent
import pytest
from gevent.queue import Queue

from bestchat import plugins
from bestchat.dispatch import get_dispatcher
from bestchat.hookspecs import hookimpl
from bestchat.providers.base import Event, Finish, Provider, TextDelta, Usage


class GatedProvider(Provider):
    name = "gated"
    needs_key = False
    default_models = ("g",)
    feed: Queue = Queue()
    closed: list[bool] = []
    prompts: list[list[dict[str, Any]]] = []

    def stream(self, model, messages, *, options=None, tools=None) -> Iterator[Event]:
        GatedProvider.prompts.append(messages)
        try:
            while True:
                item = GatedProvider.feed.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield TextDelta(item)
            yield Usage(prompt_tokens=7, completion_tokens=3, cost=0.25)
            yield Finish()
        finally:
            GatedProvider.closed.append(True)


class GatedPlugin:
    """Registers the gated provider; records and rewrites through the message filters."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    @hookimpl
    def register_providers(self, register):
        register(GatedProvider)

    @hookimpl
    def before_generate(self, conversation, messages):
        return messages + [{"role": "system", "content": "filtered"}]

    @hookimpl
    def after_generate(self, message):
        self.finished.append(message.content)


def reset_gate() -> None:
    GatedProvider.feed = Queue()
    GatedProvider.closed = []
    GatedProvider.prompts = []


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Yield to the in-process jobs until ``predicate()`` is truthy (a safety bound, not a
    performance assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        gevent.sleep(0.01)


# ---- fixtures (imported by the chat test modules) ---------------------------------------------


@pytest.fixture
def app_config():
    """Jobs run in the test process in both backends (the integration tests run real Celery)."""
    return {"JOBS_IN_PROCESS": True}


@pytest.fixture
def gated(app):
    """The gated provider installed for one test; running jobs are stopped afterwards."""
    reset_gate()
    plugin = GatedPlugin()
    plugins.register_plugin(plugin, "test-gated")
    try:
        yield plugin
    finally:
        GatedProvider.feed.put(None)
        get_dispatcher(app).kill(timeout=5)
        plugins.unregister_plugin("test-gated")


@pytest.fixture
def jobs(app):
    """The in-process job runner; waits for running jobs at the end of the test."""
    runner = get_dispatcher(app)
    yield runner
    runner.join(timeout=15)


def branch_messages(chain) -> list[dict[str, Any]]:
    """A branch (``bestchat.store.claimed.branch``) as the OpenAI messages a prompt sends of it
    (no system prompt, no attachments)."""
    from bestchat.context.items import build_items  # noqa: PLC0415
    from bestchat.context.render import render  # noqa: PLC0415

    return render(build_items(chain, {}, system_prompt=None), vision=False, load_image=lambda _upload: None)
