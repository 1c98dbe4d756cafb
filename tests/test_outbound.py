"""The outbound-address policy (``bestchat.security.outbound``) as users meet it: which base URLs
a config may have, what a provider may connect to, that the checked address is the one
connected to, and what an ordinary user learns from a failing upstream.

No test here sends a packet outside loopback: names resolve through :class:`FakeNet` (the
app's ``OUTBOUND_RESOLVER``), and connections go through its ``connect`` (``OUTBOUND_CONNECTOR``),
which routes the public addresses a test chooses to a local fake server and refuses every
other non-loopback address without sending anything.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid

import pytest
from sqlalchemy import select

from bestchat.extensions import db
from bestchat.models import Message, ProviderConfig
from bestchat.security.outbound import OutboundRefused, Policy, Rules
from bestchat.testing import network
from bestchat.testing.client import assert_error
from bestchat.testing.fake_openai import Script
from tests.chat_fakes import wait_for
from tests.test_providers_api import make_admin

API = "/api/v1"
PUBLIC = "93.184.216.34"  # stands for an ordinary public server; FakeNet routes it locally
BANNER = "internal-admin-console v2.3: secret banner"


class FakeNet:
    """A resolver and a connect function the test controls."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.routes: dict[str, int] = {}  # public address -> local port it reaches
        self.connects: list[tuple[str, int]] = []

    def answer(self, host: str, *answers: list[str]) -> None:
        """``host`` resolves to each of ``answers`` in turn (the last one then repeats)."""
        self.answers[host] = list(answers)

    def resolve(self, host: str, port: int) -> list[str]:
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, host)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def connect(self, address, timeout=None, source_address=None) -> socket.socket:
        ip, port = address
        self.connects.append((ip, port))
        if ip in self.routes:
            return socket.create_connection(("127.0.0.1", self.routes[ip]), timeout)
        if ipaddress.ip_address(ip).is_loopback:
            return socket.create_connection((ip, port), timeout)
        raise ConnectionRefusedError(f"{ip}: not reachable in tests")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Nothing here may reach DNS or a non-loopback address, even if a check broke."""
    network.loopback_only(monkeypatch)


@pytest.fixture
def net():
    return FakeNet()


@pytest.fixture
def app_config(net):
    """The shipped defaults (loopback for admins only), with the test's network."""
    return {"OUTBOUND_ALLOW": [], "OUTBOUND_RESOLVER": net.resolve, "OUTBOUND_CONNECTOR": net.connect,
            "JOBS_IN_PROCESS": True}


def create(client, **body):
    body.setdefault("provider", "openai")
    return client.post(f"{API}/providers", body)


def stored_configs(app) -> list[str]:
    with app.app_context():
        return [c.base_url for c in db.session.scalars(select(ProviderConfig))]


# ---- the policy itself (for plugins and tools that use it directly) ------------------------

@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://127.1:8080/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "embedding a loopback"),
    ("http://[::127.0.0.1]/", "embedding a loopback"),
    ("http://[64:ff9b::a00:1]/", "embedding a private"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.1.20:11434/", "private"),
    ("http://[fd12::1]/", "private"),
    ("http://169.254.10.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.251/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
])
def test_policy_refuses_non_public_addresses_in_any_spelling(url, reason):
    with pytest.raises(OutboundRefused) as refused:
        Policy(resolver=lambda host, port: pytest.fail(f"{host} was sent to DNS")).check_url(url)
    assert reason in refused.value.reason


def test_policy_checks_every_resolved_address(net):
    net.answer("mixed.test", [PUBLIC, "10.0.0.7"])
    net.answer("public.test", [PUBLIC])
    policy = Policy(resolver=net.resolve)
    with pytest.raises(OutboundRefused, match="private"):
        policy.check_url("https://mixed.test/v1")
    assert [str(a) for a in policy.check_url("https://public.test/v1")] == [PUBLIC]


def test_policy_allow_admin_allow_and_deny(net):
    net.answer("ollama.lan", ["192.168.1.20"])
    rules = Rules.parse(allow=["10.0.0.0/8", "ollama.lan"], admin_allow=["127.0.0.0/8"],
                        deny=["10.9.0.0/16", "blocked.example"])
    user, admin = Policy(rules, resolver=net.resolve), Policy(rules, trusted=True, resolver=net.resolve)
    for policy in (user, admin):
        policy.check_url("http://10.1.2.3/")
        policy.check_url("http://ollama.lan:11434/v1")
        with pytest.raises(OutboundRefused, match="denied"):
            policy.check_url("http://10.9.0.1/")
        with pytest.raises(OutboundRefused, match="denied"):
            policy.check_url("http://blocked.example/")
    admin.check_url("http://127.0.0.1:11434/")
    with pytest.raises(OutboundRefused, match="loopback"):
        user.check_url("http://127.0.0.1:11434/")


def test_metadata_addresses_need_an_exact_allow_entry():
    wide = Policy(Rules.parse(allow=["169.254.0.0/16"]))
    wide.check_url("http://169.254.10.1/")
    with pytest.raises(OutboundRefused, match="metadata"):
        wide.check_url("http://169.254.169.254/")
    Policy(Rules.parse(allow=["169.254.169.254/32"])).check_url("http://169.254.169.254/")


# ---- saving a config ---------------------------------------------------------------------

@pytest.mark.parametrize("base_url", [
    "http://127.0.0.1:8080/v1", "http://0x7f000001/", "http://2130706433/", "http://[::ffff:127.0.0.1]/",
    "http://localhost:11434/v1", "http://169.254.169.254/", "http://metadata.google.internal/",
    "http://internal.test/v1", "http://10.0.0.5:8000/v1",
])
def test_ordinary_user_cannot_save_a_non_public_base_url(app, client, user, net, base_url):
    net.answer("localhost", ["127.0.0.1"])
    net.answer("internal.test", ["10.20.30.40"])
    assert_error(create(client, base_url=base_url), 400, "base_url_refused")
    config_id = create(client, base_url=f"http://{PUBLIC}/v1").get_json()["id"]
    assert_error(client.put(f"{API}/providers/{config_id}", {"base_url": base_url}), 400, "base_url_refused")
    assert stored_configs(app) == [f"http://{PUBLIC}/v1"]


def test_admin_may_use_loopback_for_own_and_global_configs(app, client, user, net):
    net.answer("localhost", ["127.0.0.1"])
    admin = make_admin(client)
    assert create(admin, base_url="http://localhost:11434/v1").status_code == 201
    assert create(admin, base_url="http://127.0.0.1:11434/v1", scope="global").status_code == 201
    assert_error(create(admin, base_url="http://10.0.0.5/v1"), 400, "base_url_refused")
    assert_error(create(client, base_url="http://localhost:11434/v1"), 400, "base_url_refused")


def test_operator_allow_list_lets_users_reach_a_lan_model_server(app, client, user, net):
    app.config["OUTBOUND_ALLOW"] = ["192.168.1.0/24", "ollama.lan"]
    net.answer("ollama.lan", ["192.168.7.7"])
    assert create(client, base_url="http://192.168.1.20:11434/v1").status_code == 201
    assert create(client, base_url="http://ollama.lan:11434/v1").status_code == 201
    assert_error(create(client, base_url="http://192.168.2.1/v1"), 400, "base_url_refused")


def test_env_allow_list_is_json(monkeypatch, tmp_path):
    from bestchat import create_app
    from bestchat.testing.pytest_plugin import make_config

    monkeypatch.setenv("BESTCHAT_OUTBOUND_ALLOW", '["10.0.0.0/8","ollama.lan"]')
    config = make_config("embedded", tmp_path)
    del config["OUTBOUND_ALLOW"]
    app = create_app(config)
    assert app.config["OUTBOUND_ALLOW"] == ["10.0.0.0/8", "ollama.lan"]


def test_a_malformed_allow_entry_stops_the_server_at_start(tmp_path):
    from bestchat import create_app
    from bestchat.settings import ConfigurationError
    from bestchat.testing.pytest_plugin import make_config

    with pytest.raises(ConfigurationError, match="OUTBOUND"):
        create_app(make_config("embedded", tmp_path, OUTBOUND_ALLOW=["10.0.0.0/8", "not a host!"]))


# ---- connecting --------------------------------------------------------------------------

def test_connect_time_check_refuses_a_name_that_now_resolves_to_loopback(app, client, user, net, fake_openai):
    net.answer("rebind.test", [PUBLIC], ["127.0.0.1"])  # public when saved, loopback later
    config_id = create(client, base_url=f"http://rebind.test:{fake_openai.port}/v1",
                       enabled_models=["m"]).get_json()["id"]
    result = client.post(f"{API}/providers/{config_id}/test").get_json()
    assert result["ok"] is False and result["code"] == "provider_address_refused"
    assert "loopback" in result["error"] and fake_openai.requests == []
    assert net.connects == []


@pytest.mark.parametrize("provider, model", [("openai", "gpt-4o-mini"), ("litellm", "openai/gpt-4o-mini")])
def test_the_connection_goes_to_the_checked_address(app, client, user, net, fake_openai, provider, model):
    """``localhost`` resolves (in this test's DNS) to a public address, which the test routes
    to the fake server. A library that resolved the name itself would get 127.0.0.1 and a
    closed port, and the test would fail."""
    closed = free_port()
    net.answer("localhost", [PUBLIC])
    net.routes[PUBLIC] = fake_openai.port
    config_id = create(client, provider=provider, api_key="sk-test-0123456789abcdef",
                       base_url=f"http://localhost:{closed}/v1", enabled_models=[model]).get_json()["id"]
    result = client.post(f"{API}/providers/{config_id}/test").get_json()
    assert result == {"ok": True, "model": model, "not_listed": []}
    assert set(net.connects) == {(PUBLIC, closed)}  # the model list, then the chat
    assert fake_openai.requests[-1].headers["host"] == f"localhost:{closed}"


def test_redirects_are_not_followed(app, client, user, net):
    """A 3xx from the provider is an error; its Location is never requested."""
    with RedirectServer() as server:
        net.answer("redirect.test", [PUBLIC])
        net.routes[PUBLIC] = server.port
        config_id = create(client, base_url=f"http://redirect.test:{server.port}/v1",
                           enabled_models=["m"]).get_json()["id"]
        result = client.post(f"{API}/providers/{config_id}/test").get_json()
    assert result["ok"] is False and "HTTP 302" in result["error"]
    assert server.paths == ["/v1/chat/completions"]


# ---- what users learn from a failing upstream --------------------------------------------

@pytest.fixture
def reachable(app, net, fake_openai):
    """The fake server as a public address any user may configure."""
    net.answer("upstream.test", [PUBLIC])
    net.routes[PUBLIC] = fake_openai.port
    fake_openai.models = ("m",)
    return f"http://upstream.test:{fake_openai.port}/v1"


def test_ordinary_user_sees_a_code_and_short_reason_not_the_upstream_body(app, client, user, fake_openai,
                                                                          reachable):
    fake_openai.script = Script(fault=500, fault_message=BANNER)
    config_id = create(client, base_url=reachable, enabled_models=["m"]).get_json()["id"]
    result = client.post(f"{API}/providers/{config_id}/test").get_json()
    assert result["ok"] is False and result["code"] == "provider_unavailable"
    assert "HTTP 500" in result["error"] and "secret banner" not in str(result)


def test_connection_failure_kinds_are_not_shown_to_ordinary_users(app, client, user, net):
    net.answer("closed.test", [PUBLIC])  # not routed: the connection is refused
    config_id = create(client, base_url="http://closed.test:9/v1", enabled_models=["m"]).get_json()["id"]
    result = client.post(f"{API}/providers/{config_id}/test").get_json()
    assert result["code"] == "provider_unavailable" and "Refused" not in str(result)


def test_the_admin_who_owns_the_connection_sees_the_upstream_body(app, client, fake_openai, reachable):
    admin = make_admin(client)
    fake_openai.script = Script(fault=500, fault_message=BANNER)
    config_id = create(admin, base_url=reachable, enabled_models=["m"]).get_json()["id"]
    result = admin.post(f"{API}/providers/{config_id}/test").get_json()
    assert result["ok"] is False and BANNER in result["detail"]


def test_a_failed_chat_answer_does_not_carry_the_upstream_body(app, client, user, fake_openai, reachable):
    fake_openai.script = Script(fault=500, fault_message=BANNER)
    create(client, base_url=reachable, enabled_models=["m"])
    conversation_id = client.post(f"{API}/conversations", {"model": "openai/m"}).get_json()["id"]
    answer = client.post(f"{API}/conversations/{conversation_id}/messages",
                         {"content": "hi"}).get_json()["assistant_message"]

    def failed():
        with app.app_context():
            message = db.session.get(Message, uuid.UUID(answer["id"]))
            return message if message.status == "failed" else None

    message = wait_for(failed)
    assert message.error_code == "provider_unavailable" and "secret banner" not in message.error
    listed = client.get(f"{API}/conversations/{conversation_id}/messages").get_json()
    assert "secret banner" not in str(listed)


def test_provider_test_is_rate_limited_per_user(app, client, user, reachable):
    config_id = create(client, base_url=reachable, enabled_models=["m"]).get_json()["id"]
    for _ in range(10):
        assert client.post(f"{API}/providers/{config_id}/test").status_code == 200
    assert_error(client.post(f"{API}/providers/{config_id}/test"), 429, "rate_limited")


def test_non_admins_do_not_see_global_configs_address_or_options(app, client, user, net):
    net.answer("llm.corp.test", [PUBLIC])
    admin = make_admin(client)
    create(admin, base_url="http://llm.corp.test/v1", scope="global", options={"temperature": 0.3},
           api_key="sk-test-0123456789abcdef")
    seen = client.get(f"{API}/providers").get_json()["providers"]
    assert [(p["base_url"], p["options"]) for p in seen] == [(None, {})]
    assert "llm.corp.test" not in str(seen)
    as_admin = admin.get(f"{API}/providers").get_json()["providers"]
    assert as_admin[0]["base_url"] == "http://llm.corp.test/v1"


# ---- helpers -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedirectServer:
    """A loopback HTTP server that answers every request with a redirect to loopback."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        paths = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                paths.append(self.path)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/secret")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RedirectServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()

