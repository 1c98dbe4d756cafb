"""Model discovery: a connection lists its server's models (``GET {base_url}/models``), offers
them in ``/api/v1/models`` (never the provider's default names for a custom base URL), tests
a model the server lists, and chats with a discovered model end to end."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import AuditLog, Message
from bestchat.providers.base import ProviderAuthError, ProviderSettings, ProviderUnavailable
from bestchat.providers.discovery import ModelListRefused, list_models
from bestchat.security.outbound import Policy
from bestchat.testing.fake_openai import FakeOpenAI, Script
from bestchat_openai import OpenAIProvider
from tests.chat_fakes import app_config, jobs, wait_for  # noqa: F401 - fixtures (jobs in process)
from tests.test_providers_api import make_admin

API = "/api/v1"
KEY = "sk-local-0123456789abcdefLAST"
LOCAL_MODELS = ("llama3.2:1b", "qwen2.5:0.5b")
LOOPBACK = Policy.allowing("127.0.0.0/8")


def connect(client, url, **body):
    """A user's OpenAI-compatible connection to ``url``; its JSON."""
    response = client.post(f"{API}/providers", {"provider": "openai", "base_url": url, **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def model_ids(client) -> list[str]:
    return [m["id"] for m in client.get(f"{API}/models").get_json()["models"]]


class StubServer:
    """A loopback server answering every GET with one fixed status and body (for answers the
    fake OpenAI server does not give: errors, oversized and malformed lists, Ollama's tags)."""

    def __init__(self, status: int = 200, body: bytes = b"{}", paths: dict[str, tuple[int, bytes]] | None = None):
        routes = paths or {}
        seen = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                seen.append(self.path)
                code, payload = routes.get(self.path, (status, body))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "StubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the provider's discovery -------------------------------------------------------------

def test_openai_provider_lists_the_servers_models_with_its_key():
    with FakeOpenAI(api_key=KEY, models=LOCAL_MODELS) as server:
        provider = OpenAIProvider(ProviderSettings(api_key=KEY, base_url=server.url, outbound=LOOPBACK))
        assert provider.discover_models() == list(LOCAL_MODELS)
        assert server.requests[-1].path == "/v1/models"
        assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_a_rejected_key_is_a_clean_auth_error():
    with FakeOpenAI(api_key="sk-the-right-one-000") as server:
        provider = OpenAIProvider(ProviderSettings(api_key=KEY, base_url=server.url, outbound=LOOPBACK))
        with pytest.raises(ProviderAuthError) as error:
            provider.discover_models()
    assert "HTTP 401" in error.value.message and KEY not in str(error.value) and not error.value.detail


def test_an_upstream_failure_is_an_error_without_the_key():
    body = json.dumps({"error": {"message": f"overloaded, key {KEY}"}}).encode()
    with StubServer(503, body) as stub:
        with pytest.raises(ProviderUnavailable) as error:
            list_models(stub.root + "/v1", KEY, LOOPBACK)
    assert "HTTP 503" in error.value.message and "overloaded" in error.value.detail
    assert KEY not in error.value.message + error.value.detail


@pytest.mark.parametrize("body, why", [
    (b"<html>not json</html>", "not JSON"),
    (b'{"object": "list"}', "not a model list"),
    (b'{"data": "many"}', "not a model list"),
    (b"[" + b'{"id": "m"},' * 200_000 + b'{"id": "m"}]', "larger than"),
])
def test_a_malformed_or_oversized_list_is_refused(body, why):
    with StubServer(200, body) as stub:
        with pytest.raises(ModelListRefused) as error:
            list_models(stub.root + "/v1", None, LOOPBACK)
    assert why in error.value.message


def test_the_list_is_bounded_deduplicated_and_skips_unusable_entries():
    entries = [{"id": "a"}, {"id": "a"}, {"id": 7}, {"name": "b"}, "c", {"id": "x" * 201}] + [
        {"id": f"m{i}"} for i in range(10)]
    with StubServer(200, json.dumps({"data": entries}).encode()) as stub:
        assert list_models(stub.root + "/v1", None, LOOPBACK, max_models=4).ids == ["a", "m0", "m1", "m2"]


def test_an_ollama_root_is_listed_through_its_native_tags():
    tags = json.dumps({"models": [{"name": "llama3.2:1b"}, {"name": "phi3:mini"}]}).encode()
    with StubServer(404, b"404 page not found", {"/api/tags": (200, tags)}) as stub:
        listed = list_models(stub.root, None, LOOPBACK)
        assert (listed.ids, listed.api) == (["llama3.2:1b", "phi3:mini"], "ollama")
        assert stub.paths == ["/models", "/api/tags"]


def test_the_outbound_policy_applies_to_discovery(fake_openai):
    provider = OpenAIProvider(ProviderSettings(base_url=fake_openai.url, outbound=Policy()))
    with pytest.raises(Exception) as error:
        provider.discover_models()
    assert getattr(error.value, "code", None) == "provider_address_refused"
    assert fake_openai.requests == []


def test_litellm_lists_a_base_url_servers_models_as_litellm_model_strings(fake_openai):
    from bestchat_litellm import LiteLLMProvider

    fake_openai.models = LOCAL_MODELS
    provider = LiteLLMProvider(ProviderSettings(base_url=fake_openai.url, outbound=LOOPBACK))
    assert provider.discover_models() == ["openai/llama3.2:1b", "openai/qwen2.5:0.5b"]
    assert LiteLLMProvider(ProviderSettings(api_key=KEY)).discover_models() is None


# ---- connections through the API ----------------------------------------------------------

def test_a_local_server_offers_exactly_its_discovered_models(app, client, user, fake_openai):
    fake_openai.models = LOCAL_MODELS
    config = connect(client, fake_openai.url)
    assert config["discovery"] == {"ok": True, "count": 2}
    assert config["discovered_models"] == list(LOCAL_MODELS) and config["models_refreshed_at"]
    assert [m for m in model_ids(client) if m.startswith("openai/")] == ["openai/llama3.2:1b",
                                                                         "openai/qwen2.5:0.5b"]
    assert not any("gpt-4o" in m for m in model_ids(client))
    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "provider_config.models_discovered"))
        assert row.details["count"] == 2 and row.actor_id is not None


def test_a_server_that_cannot_be_listed_is_saved_with_the_failure_and_offers_nothing(client, user):
    with FakeOpenAI(api_key="sk-the-right-one-000") as server:
        config = connect(client, server.url, api_key=KEY)
    assert config["discovery"]["ok"] is False and config["discovery"]["code"] == "provider_auth"
    assert config["discovered_models"] is None and KEY not in json.dumps(config)
    assert client.get(f"{API}/providers/{config['id']}").status_code == 200
    assert not [m for m in model_ids(client) if m.startswith("openai/")]


def test_discover_refreshes_the_list_and_a_new_model_appears(client, user, fake_openai):
    fake_openai.models = ("llama3.2:1b",)
    config = connect(client, fake_openai.url)
    fake_openai.models = ("llama3.2:1b", "mistral:7b")
    refreshed = client.post(f"{API}/providers/{config['id']}/discover").get_json()
    assert refreshed["discovered_models"] == ["llama3.2:1b", "mistral:7b"]
    assert refreshed["discovery"] == {"ok": True, "count": 2}
    assert "openai/mistral:7b" in model_ids(client)


def test_chosen_models_and_display_names(client, user, fake_openai):
    fake_openai.models = LOCAL_MODELS
    config = connect(client, fake_openai.url)
    updated = client.put(f"{API}/providers/{config['id']}", {
        "enabled_models": ["qwen2.5:0.5b"], "model_names": {"qwen2.5:0.5b": "Qwen (small)"}}).get_json()
    assert updated["model_names"] == {"qwen2.5:0.5b": "Qwen (small)"}
    models = {m["id"]: m for m in client.get(f"{API}/models").get_json()["models"]}
    assert models["openai/qwen2.5:0.5b"]["name"] == "Qwen (small)"
    assert "openai/llama3.2:1b" not in models
    bad = client.put(f"{API}/providers/{config['id']}", {"model_names": {"gpt-4o": "GPT"}})
    assert bad.status_code == 400 and "does not offer" in bad.get_json()["error"]["message"]
    too_long = client.put(f"{API}/providers/{config['id']}", {"model_names": {"qwen2.5:0.5b": "x" * 101}})
    assert too_long.status_code == 400
    assert client.get(f"{API}/providers/{config['id']}").get_json()["model_names"] == {"qwen2.5:0.5b": "Qwen (small)"}


def test_test_tries_a_listed_model_and_reports_the_others(client, user, fake_openai):
    fake_openai.models = LOCAL_MODELS
    config = connect(client, fake_openai.url, enabled_models=["ghost-model", "qwen2.5:0.5b"])
    result = client.post(f"{API}/providers/{config['id']}/test").get_json()
    assert result == {"ok": True, "model": "qwen2.5:0.5b", "not_listed": ["ghost-model"]}
    assert [r.body["model"] for r in fake_openai.requests if r.method == "POST"] == ["qwen2.5:0.5b"]


def test_test_never_succeeds_against_a_model_the_server_does_not_list(client, user, fake_openai):
    fake_openai.models = LOCAL_MODELS
    config = connect(client, fake_openai.url, enabled_models=["gpt-4o"])
    result = client.post(f"{API}/providers/{config['id']}/test").get_json()
    assert result["ok"] is False and result["code"] == "model_not_listed"
    assert result["not_listed"] == ["gpt-4o"] and "gpt-4o" in result["error"]
    assert [r for r in fake_openai.requests if r.method == "POST"] == []


def test_editing_without_a_key_keeps_it_for_discovery(client, user):
    with FakeOpenAI(api_key=KEY, models=LOCAL_MODELS) as server:
        config = connect(client, server.url, api_key=KEY)
        edited = client.put(f"{API}/providers/{config['id']}", {"name": "Home Ollama"}).get_json()
        assert edited["name"] == "Home Ollama" and edited["has_key"] is True
        refreshed = client.post(f"{API}/providers/{config['id']}/discover").get_json()
        assert refreshed["discovery"]["ok"] is True
        assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_discover_is_rate_limited_and_owned(app, client, user, fake_openai):
    app.config["RATELIMIT_PROVIDER_TEST"] = "2/60"
    config = connect(client, fake_openai.url)
    url = f"{API}/providers/{config['id']}/discover"
    assert [client.post(url).status_code for _ in range(3)] == [200, 200, 429]
    other = client.new()
    other.signup("bob@example.com", "correct horse battery")
    assert other.post(url).status_code == 404
    assert other.post(f"{API}/providers/not-a-uuid/discover").status_code == 404


def test_a_global_connection_hides_its_address_and_list_from_users(client, user, fake_openai):
    admin = make_admin(client)
    fake_openai.models = LOCAL_MODELS
    shared = connect(admin, fake_openai.url, scope="global", api_key=KEY)
    assert shared["discovered_models"] == list(LOCAL_MODELS)
    seen = client.get(f"{API}/providers/{shared['id']}").get_json()
    assert seen["base_url"] is None and seen["discovered_models"] is None and seen["key_last4"] is None
    assert "openai/llama3.2:1b" in model_ids(client)
    everything = json.dumps(client.get(f"{API}/providers").get_json()) + json.dumps(
        client.get(f"{API}/models").get_json())
    assert str(fake_openai.port) not in everything
    assert client.post(f"{API}/providers/{shared['id']}/discover").status_code == 403


def test_another_users_base_url_is_never_in_someone_elses_answers(client, user, fake_openai):
    connect(client, fake_openai.url)
    other = client.new()
    other.signup("bob@example.com", "correct horse battery")
    for path in ("/providers", "/models"):
        assert str(fake_openai.port) not in other.get(API + path).get_data(as_text=True)


# ---- end to end: connect a local server, chat with a discovered model ----------------------

def test_a_user_chats_with_a_discovered_model(app, client, user, fake_openai, jobs):
    fake_openai.models = LOCAL_MODELS
    connect(client, fake_openai.url)
    fake_openai.script = Script(content="Hello from the local model.")
    conversation = client.post(f"{API}/conversations", {"model": "openai/qwen2.5:0.5b"}).get_json()
    answer = client.post(f"{API}/conversations/{conversation['id']}/messages",
                         {"content": "hi"}).get_json()["assistant_message"]

    def done():
        with app.app_context():
            message = db.session.get(Message, uuid.UUID(answer["id"]))
            return message if message.status in ("complete", "failed") else None

    message = wait_for(done)
    assert (message.status, message.content) == ("complete", "Hello from the local model.")
    assert [r.body["model"] for r in fake_openai.requests if r.method == "POST"] == ["qwen2.5:0.5b"]

    # A model the server did not list is not served: the answer fails, nothing is sent.
    conversation = client.post(f"{API}/conversations", {"model": "openai/gpt-4o"}).get_json()
    answer = client.post(f"{API}/conversations/{conversation['id']}/messages",
                         {"content": "hi"}).get_json()["assistant_message"]
    message = wait_for(done)
    assert message.status == "failed" and message.error_code == "unknown_model"
    assert [r.body["model"] for r in fake_openai.requests if r.method == "POST"] == ["qwen2.5:0.5b"]
