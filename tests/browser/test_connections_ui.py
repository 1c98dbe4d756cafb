"""Settings › Provider keys with a local OpenAI-compatible server (the fake one, standing in
for Ollama): adding it discovers its models, a saved connection is edited (models offered,
display names), "Discover models" refreshes the checklist, "Test" names the model it tried,
and the chat picker offers the model by its display name and gets its answer."""

from __future__ import annotations

import re

import pytest

from bestchat.testing.fake_openai import FakeOpenAI, Script
from tests.browser.helpers import answer_text, ask

MODELS = ("llama3.2:1b", "qwen2.5:0.5b")


@pytest.fixture
def local_server():
    with FakeOpenAI(models=MODELS) as fake:
        yield fake


def test_connect_a_local_server_choose_its_models_and_test(page, signed_in, local_server):
    page.goto("/settings")
    form = page.get_by_role("form", name="Add a provider key")
    form.get_by_label("Provider").select_option("openai")
    form.get_by_label("Name").fill("Home")
    form.get_by_label("Base URL").fill(local_server.url)
    form.get_by_role("button", name="Add key").click()
    form.get_by_text("The server lists 2 model(s)").wait_for()
    item = page.locator(".item", has_text="Home (openai)")
    item.get_by_text("all 2 discovered model(s)").wait_for()
    assert "gpt-4o" not in page.content()

    item.get_by_role("button", name="Edit Home (openai)").click()
    editor = item.get_by_role("form", name="Edit Home")
    editor.get_by_label("Offer qwen2.5:0.5b").check()
    editor.get_by_label("Display name of qwen2.5:0.5b").fill("Qwen small")
    local_server.models = (*MODELS, "mistral:7b")
    editor.get_by_role("button", name="Discover models").click()
    editor.get_by_text("The server lists 3 model(s).").wait_for()
    assert editor.get_by_label("Offer qwen2.5:0.5b").is_checked()  # choices survive a refresh
    assert editor.get_by_label("Offer mistral:7b").is_visible()
    editor.get_by_role("button", name="Save").click()
    item = page.locator(".item", has_text="Home (openai)")
    item.get_by_text("1 model(s) offered").wait_for()

    models = page.request.get("/api/v1/models").json()["models"]
    assert [(m["id"], m["name"]) for m in models if m["provider"] == "openai"] == [("openai/qwen2.5:0.5b", "Qwen small")]

    item.get_by_role("button", name="Test Home (openai)").click()
    item.get_by_role("status").filter(has_text=re.compile("Works with")).wait_for(timeout=30000)
    assert "Works with qwen2.5:0.5b." in item.get_by_role("status").inner_text()

    # The chat picker shows the display name; the answer comes from the local server.
    local_server.script = Script(content="Hello from the local model.")
    page.goto("/")
    picker = page.get_by_label("Model")
    picker.locator("option", has_text="Qwen small (openai/qwen2.5:0.5b)").wait_for(state="attached")
    picker.select_option("openai/qwen2.5:0.5b")
    ask(page, "Say hello")
    assert answer_text(page) == "Hello from the local model."
    assert local_server.requests[-1].body["model"] == "qwen2.5:0.5b"
