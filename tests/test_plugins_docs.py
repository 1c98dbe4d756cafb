"""docs/plugins.md is complete and true: a section titled with each hook's exact signature and one
per base class, each with an example; every ```python block runs in a fresh module, a block that
implements hooks loads as a plugin, and each marked example (``<!-- example: NAME -->`` before
its block) does what the page says: registered, streamed, served, refused; and the tutorial
quotes the plugin in the repository exactly."""

from __future__ import annotations

import inspect
import json
import logging
import re
import sys
import types
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from bestchat import create_app, hookspecs, plugins
from bestchat.context.chain import broken_rule
from bestchat.extensions import db
from bestchat.models import Message
from bestchat.plugin_api import (
    Finish, Item, OutboundPolicy, OutboundRefused, ProviderAddressRefused, ProviderAuthError, ProviderRateLimited,
    ProviderSettings, ProviderUnavailable, Situation, TextDelta, Usage, get_context_strategies, get_providers,
    get_tools,
)
from bestchat.testing.client import assert_error
from bestchat.testing.fake_openai import Script
from bestchat.testing.plugins import plugin_registered
from bestchat.testing.pytest_plugin import make_config
from bestchat.tools.context import set_context
from tests.admin_helpers import sign_in_admin, sign_up
from tests.chat_fakes import app_config, jobs, wait_for  # noqa: F401

DOCS = Path(__file__).resolve().parent.parent / "docs"
TEXT = (DOCS / "plugins.md").read_text()
SIGNATURES = {
    name: f"{name}({', '.join(inspect.signature(function).parameters)})"
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "bestchat_spec")
}
BASE_CLASSES = ["The Provider base class", "The Tool class", "The ContextStrategy base class"]
API = "/api/v1"
LOOPBACK = OutboundPolicy.allowing("127.0.0.0/8")


@dataclass(frozen=True)
class Example:
    """One fenced block of the page, with the marker before it (if any)."""

    index: int
    marker: str | None
    language: str
    code: str

    def __str__(self) -> str:
        return self.marker or f"block-{self.index}"


EXAMPLES = [Example(index, marker or None, language, code) for index, (marker, language, code) in enumerate(
    re.findall(r"(?:^<!-- example: ([\w-]+) -->\n)?^```(\w*)\n(.*?)^```$", TEXT, re.DOTALL | re.MULTILINE))]
PYTHON = [example for example in EXAMPLES if example.language == "python"]
MARKED = {example.marker: example for example in EXAMPLES if example.marker}
# The markers a test below checks (each test asks for its example through ``load``).
CHECKED = {"parrot", "word-count", "drop-old-tool-output", "hello-blueprint", "hello-admin", "redact-cards",
           "audit-log", "echo-options", "tinychat", "tools", "convert-temperature-schema", "collapse-code"}


def sections() -> dict[str, str]:
    """The text of each ``## `` section, by heading."""
    parts = re.split(r"^## (.+)$", TEXT, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def run(example: Example, monkeypatch) -> types.ModuleType:
    """``example``'s code executed as a fresh module (in ``sys.modules`` for the test)."""
    module = types.ModuleType(f"plugins_md_example_{example.index}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(example.code, f"docs/plugins.md ({example})", "exec"), module.__dict__)
    return module


def load(marker: str, monkeypatch) -> types.ModuleType:
    assert marker in CHECKED
    return run(MARKED[marker], monkeypatch)


def chat(app, client, model: str, content: str = "hi", **settings) -> Message:
    """Create a conversation with ``model`` and ``settings``, send ``content`` and return the
    stored answer once its generation has ended (jobs run in this process)."""
    created = client.post(f"{API}/conversations", {"model": model, "settings": settings})
    assert created.status_code == 201, created.get_json()
    sent = client.post(f"{API}/conversations/{created.get_json()['id']}/messages", {"content": content})
    assert sent.status_code == 202, sent.get_json()
    answer_id = uuid.UUID(sent.get_json()["assistant_message"]["id"])

    def ended() -> Message | None:
        with app.app_context():
            message = db.session.get(Message, answer_id)
            if message.status in ("pending", "queued", "streaming"):
                return None
            db.session.expunge(message)
            return message

    return wait_for(ended)


def second_app(tmp_path):
    """Another app, created while a plugin is registered (blueprints and admin views are added
    when an app is created), with its own SQLite database."""
    (tmp_path / "second").mkdir()
    app = create_app(make_config("embedded", tmp_path / "second"))
    with app.app_context():
        db.create_all()
    return app


# ---- the page's structure -----------------------------------------------------------------------

@pytest.mark.parametrize("hook", sorted(SIGNATURES))
def test_every_hook_has_a_section_with_its_signature(hook):
    assert f"\n## {SIGNATURES[hook]}\n" in TEXT


def test_no_section_documents_a_hook_that_does_not_exist():
    documented = re.findall(r"^## (\w+\(.*\))$", TEXT, re.MULTILINE)
    assert sorted(documented) == sorted(SIGNATURES.values())


def test_the_base_classes_are_documented_after_the_hooks_and_before_the_tutorial():
    headings = list(sections())
    hooks = [headings.index(signature) for signature in SIGNATURES.values()]
    classes = [headings.index(heading) for heading in BASE_CLASSES]
    assert max(hooks) < min(classes) and classes == sorted(classes)
    assert max(classes) < headings.index("Tutorial: writing a plugin")


@pytest.mark.parametrize("heading", [*SIGNATURES.values(), *BASE_CLASSES])
def test_every_hook_and_base_class_section_has_a_python_example(heading):
    assert "```python\n" in sections()[heading]


@pytest.mark.parametrize("heading", [*SIGNATURES.values(), *BASE_CLASSES])
def test_examples_import_only_the_plugin_api_from_bestchat(heading):
    imported = re.findall(r"^(?:from|import) (bestchat[\w.]*)", sections()[heading], re.MULTILINE)
    assert imported and set(imported) == {"bestchat.plugin_api"}


def test_every_marked_example_is_checked():
    assert set(MARKED) == CHECKED


@pytest.mark.parametrize("example", PYTHON, ids=str)
def test_every_python_example_runs_and_its_hooks_load_as_a_plugin(app, monkeypatch, example):
    monkeypatch.syspath_prepend(str(DOCS / "tutorial-plugin"))  # (the tutorial's test imports its module)
    module = run(example, monkeypatch)
    hooks = sorted(name for name, value in vars(module).items() if hasattr(value, "bestchat_impl"))
    if hooks:
        with plugin_registered(module, f"docs-example-{example.index}") as record:
            assert (record["status"], record["hooks"], record["error"]) == ("loaded", hooks, None)


@pytest.mark.parametrize("name", ["setup.cfg", "pyproject.toml", "bestchat_shout.py", "test_bestchat_shout.py"])
def test_tutorial_quotes_the_plugin_in_the_repository(name):
    assert (DOCS / "tutorial-plugin" / name).read_text() in TEXT


# ---- the hook examples --------------------------------------------------------------------------

def test_parrot_is_offered_to_every_user_and_answers(app, client, user, jobs, monkeypatch):
    module = load("parrot", monkeypatch)
    with plugin_registered(module, "bestchat-parrot"):
        assert get_providers()["parrot"] is module.Parrot
        listed = {model["id"]: model for model in client.get(f"{API}/models").get_json()["models"]}
        assert listed["parrot/polly"]["source"] == "builtin"  # no connection configured
        answer = chat(app, client, "parrot/polly", "squawk")
    assert (answer.status, answer.content, answer.provider) == ("complete", "squawk", "parrot")


def test_word_count_and_delete_file_become_tools(app, monkeypatch):
    with plugin_registered(load("word-count", monkeypatch), "bestchat-words"):
        tools = get_tools()
        count, delete = tools["word_count"], tools["delete_file"]
    assert (count.risk, count.function("one two three"), count.description) == ("low", 3, "Count the words in a text.")
    assert count.parameters["properties"] == {"text": {"type": "string", "description": "the text to count"}}
    assert (delete.risk, delete.timeout, delete.plugin) == ("high", 5, "bestchat-words")


def tool_round_items(output_tokens: int) -> list[Item]:
    """A prompt with one tool round before the newest user message."""
    call = {"id": "c1", "type": "function", "function": {"name": "fetch", "arguments": "{}"}}
    return [Item("system", "Be brief.", 6, None, group=0, turn=0, pinned=True, kind="system"),
            Item("user", "Fetch it", 6, "m1", group=1, turn=1),
            Item("assistant", "", 20, "m2", group=2, turn=1, tool_calls=(call,)),
            Item("tool", "x " * output_tokens, output_tokens, "m3", group=2, turn=1, tool_call_id="c1"),
            Item("assistant", "Done.", 6, "m4", group=3, turn=1),
            Item("user", "Thanks", 5, "m5", group=4, turn=5, pinned=True)]


def test_drop_old_tool_output_replaces_outputs_and_keeps_the_rules(app, monkeypatch):
    module = load("drop-old-tool-output", monkeypatch)
    with plugin_registered(module, "bestchat-drop"):
        assert get_context_strategies()["drop-old-tool-output"] is module.DropOldToolOutput
    items = tool_round_items(500)
    fitted = module.DropOldToolOutput().fit(Situation(items, budget=100, count=lambda text: len(text.split()),
                                                      summaries=None))
    assert fitted.items[3].text == "[output omitted]" and fitted.note == {"dropped_outputs": 1}
    assert broken_rule(items, fitted) is None
    assert module.DropOldToolOutput().fit(Situation(tool_round_items(2), budget=10, count=len, summaries=None)) is None


def test_hello_blueprint_serves_its_route(app, monkeypatch, tmp_path):
    with plugin_registered(load("hello-blueprint", monkeypatch), "bestchat-hello"):
        second = second_app(tmp_path)
    assert second.test_client().get("/plugins/hello/").get_json() == {"hello": "world"}


def test_hello_admin_view_is_for_administrators_only(app, monkeypatch, tmp_path):
    with plugin_registered(load("hello-admin", monkeypatch), "bestchat-hello-admin"):
        second = second_app(tmp_path)
    anonymous = second.test_client().get("/admin/hello_admin/")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/login")
    assert sign_up(second, "user@example.com").get("/admin/hello_admin/").status_code == 403
    assert sign_in_admin(second).get("/admin/hello_admin/").get_data(as_text=True) == "hello, admin"


def test_redact_cards_filters_the_prompt(app, monkeypatch):
    image = {"role": "user", "content": [{"type": "text", "text": "4111 1111 1111 1111"}]}
    with plugin_registered(load("redact-cards", monkeypatch), "bestchat-cards"):
        filtered = plugins.run_before_generate(None, [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "pay with 4111 1111 1111 1111 or 5500-0000-0000-0004 please"}, image])
    assert filtered == [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "pay with [card number] or [card number] please"}, image]


def test_audit_log_logs_each_finished_answer(app, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="bestchat_audit_plugin")
    with plugin_registered(load("audit-log", monkeypatch), "bestchat-audit"):
        plugins.run_after_generate(SimpleNamespace(id="m1", status="complete", content="hello"))
    assert "message m1 finished: complete, 5 characters" in caplog.text


# ---- the base class examples --------------------------------------------------------------------

def test_echo_options_are_checked_at_creation_and_reach_the_stream(app, client, user, jobs, monkeypatch):
    with plugin_registered(load("echo-options", monkeypatch), "bestchat-echo"):
        refused = client.post(f"{API}/conversations", {"model": "echo/echo", "settings": {"repeat": 9}})
        assert assert_error(refused, 400, "invalid_setting")["message"] == (
            "'settings.repeat': Input should be less than or equal to 5")
        answer = chat(app, client, "echo/echo", "hi", repeat=2)
    assert (answer.status, answer.content) == ("complete", "hi hi")


def tinychat(module, server, **settings):
    return module.TinyChat(ProviderSettings(base_url=server.url, outbound=LOOPBACK, **settings))


def test_tinychat_discovers_streams_and_maps_failures(app, monkeypatch, fake_openai):
    module = load("tinychat", monkeypatch)
    fake_openai.script = Script(content="Hello there")
    provider = tinychat(module, fake_openai)
    assert provider.discover_models() == ["gpt-4o-mini", "fake-model"]
    events = list(provider.stream("fake-model", [{"role": "user", "content": "hi there"}],
                                  options=module.TinyChat.Options(temperature=0.5)))
    assert events == [TextDelta("Hello there"), Usage(prompt_tokens=2, completion_tokens=2), Finish("stop")]
    assert fake_openai.requests[-1].body["temperature"] == 0.5 and "timeout" not in fake_openai.requests[-1].body

    fake_openai.enqueue(Script(fault=500, fault_message="internal banner"), Script(fault=429, retry_after=3))
    with pytest.raises(ProviderUnavailable) as unavailable:
        list(provider.stream("fake-model", [{"role": "user", "content": "hi"}]))
    assert "internal banner" in unavailable.value.detail and "banner" not in unavailable.value.message
    with pytest.raises(ProviderRateLimited) as limited:
        list(provider.stream("fake-model", [{"role": "user", "content": "hi"}]))
    assert limited.value.retry_after == 3

    fake_openai.api_key = "sk-right-key"
    with pytest.raises(ProviderAuthError) as refused:
        list(tinychat(module, fake_openai, api_key="sk-wrong-key-123").stream("fake-model", []))
    assert "sk-wrong" not in str(refused.value)
    with pytest.raises(ProviderAddressRefused):  # loopback, under the strictest policy
        list(module.TinyChat(ProviderSettings(base_url=fake_openai.url)).stream("fake-model", []))


def test_tinychat_serves_a_users_connection_end_to_end(app, client, user, jobs, monkeypatch, fake_openai):
    fake_openai.script = Script(content="Hello from the server")
    with plugin_registered(load("tinychat", monkeypatch), "bestchat-tinychat"):
        missing = client.post(f"{API}/providers", {"provider": "tinychat"})
        assert_error(missing, 400, "missing_field")  # needs_base_url
        created = client.post(f"{API}/providers", {"provider": "tinychat", "base_url": fake_openai.url})
        assert created.status_code == 201, created.get_json()
        assert created.get_json()["discovered_models"] == ["gpt-4o-mini", "fake-model"]
        answer = chat(app, client, "tinychat/fake-model")
    assert (answer.status, answer.content) == ("complete", "Hello from the server")


def test_the_tools_example_makes_the_documented_schema_and_runs(app, monkeypatch, fake_openai):
    module = load("tools", monkeypatch)
    with plugin_registered(module, "bestchat-convert"):
        convert, status = get_tools()["convert_temperature"], get_tools()["http_status"]
    assert convert.schema() == json.loads(MARKED["convert-temperature-schema"].code)
    assert (convert.function(212), convert.function(100, to="F")) == (100.0, 212.0)
    assert (status.risk, status.timeout, status.network) == ("medium", 10, True)
    with pytest.raises(OutboundRefused):  # outside a tool run: no allowance, loopback refused
        module.http_status(fake_openai.url + "/models")
    set_context({"tool": "http_status", "outbound": {"allow": ["127.0.0.0/8"], "deny": []}})
    try:
        assert module.http_status(fake_openai.url + "/models") == 200
    finally:
        set_context({})


def test_collapse_old_code_passes_its_own_test_and_the_chains_rules(app, monkeypatch):
    module = load("collapse-code", monkeypatch)
    module.test_collapses_code_in_old_answers()
    with plugin_registered(module, "bestchat-collapse"):
        assert get_context_strategies()["collapse-old-code"] is module.CollapseOldCode
    code = "```\n" + "x = 1\n" * 50 + "```"
    items = [Item("user", "Write code", 6, "m1", group=1, turn=1),
             Item("assistant", f"Here:\n{code}", 105, "m2", group=2, turn=1),
             Item("user", f"And this?\n{code}", 106, "m3", group=3, turn=3, pinned=True)]
    fitted = module.CollapseOldCode().fit(Situation(items, budget=120, count=lambda text: len(text.split()),
                                                    summaries=module.NoSummaries()))
    assert broken_rule(items, fitted) is None and fitted.items[2] is items[2]  # the pinned one is kept
