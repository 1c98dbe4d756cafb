"""The ``litellm`` provider on real processes (production mode: gunicorn, a Celery worker,
PostgreSQL and Redis): a worker started while a litellm connection exists imports litellm at
start, not at its first answer; the web processes never import it; an answer streamed through
the worker to a fake OpenAI server brings every token, in order, to the client and the database.

Whether a process imported litellm is read from its memory map: importing litellm loads its
native extension (``litellm/rust_bridge/_native``), and nothing else in BestChat does.
"""

from __future__ import annotations

import os
from pathlib import Path

import openai
import pytest

from bestchat.testing.fake_openai import FakeOpenAI, Script

pytestmark = pytest.mark.integration

LITELLM_NATIVE = "litellm/rust_bridge/_native"
TOKENS = 40


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's master forks the web worker)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return tree


def imported_litellm(pid: int) -> bool:
    """Whether ``pid`` or a descendant has litellm loaded."""
    for member in process_tree(pid):
        try:
            if LITELLM_NATIVE in Path(f"/proc/{member}/maps").read_text():
                return True
        except OSError:
            continue
    return False


@pytest.fixture(scope="module")
def production(stack):
    if not stack.workers or not os.path.exists("/proc/self/maps"):
        pytest.skip("production mode on Linux only: embedded generation runs in the web process")
    return stack


def test_litellm_streams_through_a_worker_that_imported_it_at_start(production, alice):
    stack = production
    with FakeOpenAI() as upstream:
        upstream.script = Script(tokens=TOKENS, delay=0.002)
        created = alice.api("POST", "/providers", json={"provider": "litellm", "api_key": "sk-fake-0123456789",
                                                         "base_url": upstream.url,
                                                         "enabled_models": ["openai/fake-model"]})
        assert created.status_code == 201, created.text
        try:
            assert not imported_litellm(stack.workers[0].pid)  # started before any litellm connection
            worker = stack.start_worker()  # a litellm connection exists now: imported at start
            assert imported_litellm(worker.pid)
            stack.kill_worker(0)  # the answer goes to the new worker

            with openai.OpenAI(base_url=f"{stack.url()}/v1", api_key=alice.token, max_retries=0,
                               timeout=60) as sdk:
                chunks = list(sdk.chat.completions.create(
                    model="litellm/openai/fake-model", messages=[{"role": "user", "content": "Count."}],
                    stream=True, stream_options={"include_usage": True}))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == Script(tokens=TOKENS).text()  # every token, in order, once
            assert chunks[-1].usage.completion_tokens == TOKENS
            assert upstream.requests[-1].body["model"] == "fake-model"
            conversation_id = alice.api("GET", "/conversations").json()["conversations"][0]["id"]
            stored = alice.api("GET", f"/conversations/{conversation_id}/messages").json()["messages"]
            assert (stored[-1]["status"], stored[-1]["content"]) == ("complete", text)

            assert not any(imported_litellm(process.pid) for process, _ in stack.webs)
        finally:
            alice.api("DELETE", f"/providers/{created.json()['id']}")
