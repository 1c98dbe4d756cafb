"""schemathesis against the server's own ``/api/v1/openapi.json``, in process (WSGI), on SQLite
and on PostgreSQL: no input may make the server answer 5xx, and every answer must match the
documented status codes, content types and bodies.

Every operation is fuzzed with valid and invalid data (schemathesis' positive and negative
modes) as a real user (Bearer token) and anonymously. Path ids are random or the ids of the
user's real objects (made afresh for each operation), so the code behind the "not found" runs. Generation is
derandomized with a fixed number of examples per operation, so a CI run is reproducible; set
``BESTCHAT_FUZZ_EXAMPLES`` to search longer locally. Every failure is collected with the exact
request that caused it, so one run reports all of them at once.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from bestchat.streaming import get_bus
from bestchat.streaming.memory_bus import MemoryBus
from tests.chat_fakes import wait_for

EXAMPLES = int(os.environ.get("BESTCHAT_FUZZ_EXAMPLES", "40"))
ANONYMOUS_EXAMPLES = max(EXAMPLES // 4, 3)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
# Anonymous callers can only reach these; everything else is a 401 whatever the input.
PUBLIC = {"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/openapi.json", "/healthz", "/readyz"}

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def app_config():
    """Answers are generated in this process (the demo model), so sends complete; the per-user
    generation limits are raised so that the fixtures' own sends are never refused."""
    return {"JOBS_IN_PROCESS": True, "USER_MAX_ACTIVE_GENERATIONS": 1000, "RATELIMIT_SEND_PER_USER": "100000/60"}


def _memory_bus(app) -> None:
    """Events go through the in-memory bus in both backends (the Redis bus's reader greenlet
    would block this process, which runs the requests and the jobs in one thread)."""
    if not isinstance(get_bus(app), MemoryBus):
        app.extensions["bestchat_bus"] = MemoryBus(maxlen=app.config["STREAM_MAXLEN"], ttl=app.config["STREAM_TTL"])


def _known_objects(app, client) -> dict[str, list[str]]:
    """A conversation with a finished exchange, a spare token, a provider config and a tool
    approval choice of the user: path ids the fuzzer uses besides random ones."""
    conversation = client.post("/api/v1/conversations", json={"title": "fuzz"}).get_json()["id"]
    sent = client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "hello"})
    assert sent.status_code == 202, sent.get_json()
    answer, question = sent.get_json()["assistant_message"]["id"], sent.get_json()["user_message"]["id"]
    wait_for(lambda: client.get(f"/api/v1/messages/{answer}").get_json()["status"] == "complete")
    token = client.post("/api/v1/tokens", json={"name": "spare"}).get_json()["id"]
    provider = client.post("/api/v1/providers", json={"provider": "demo", "name": "fuzz"})
    assert provider.status_code == 201, provider.get_json()
    approval = client.put("/api/v1/tool-approvals", json={"risk_level": "low", "decision": "ask"})
    assert approval.status_code == 200, approval.get_json()
    return {"conversation_id": [conversation], "message_id": [answer, question], "token_id": [token],
            "config_id": [provider.get_json()["id"]], "setting_id": [approval.get_json()["id"]],
            "model": ["demo/demo"]}


def _body_properties(operation) -> set[str]:
    for body in operation.body:
        return set((body.definition.get("schema") or {}).get("properties") or {})
    return set()


def _with_model(model: str):
    def put(case):
        if isinstance(case.body, dict):
            case.body["model"] = model
        return case
    return put


def _describe(case, response) -> str:
    """The exact request: method, path, query, body, as schemathesis sent it."""
    return (f"{case.method} {case.formatted_path} query={case.query!r} body={case.body!r} "
            f"media_type={case.media_type!r} -> {response.status_code} {response.content[:300]!r}")


def _fuzz(operation, headers: dict[str, str], examples: int, known: dict[str, list[str]],
          failures: list[str]) -> None:
    path_names = {p.name for p in operation.path_parameters}
    paths = [{}] + [{name: value} for name in path_names & set(known) for value in known[name]]
    strategies = {(mode, index): operation.as_strategy(generation_mode=mode, path_parameters=path or None)
                  for mode in MODES for index, path in enumerate(paths)}
    if "model" in known and "model" in _body_properties(operation):
        # Valid data naming a model that exists, so that requests get past the model check too
        strategies.update({("model", index): strategies[(MODES[0], index)].map(_with_model(known["model"][0]))
                           for index in range(len(paths))})
    seen: set[str] = set()

    @hypothesis.settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate], print_blob=False,
                         suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=st.one_of(list(strategies.values())))
    def run(case) -> None:
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{operation.label}: {failure.title}"
                if key not in seen:  # one example per kind of failure is enough to act on
                    seen.add(key)
                    failures.append(f"{key}\n    {_describe(case, response)}")

    run()


def test_no_input_gives_a_server_error_or_an_undocumented_answer(app, client, user):
    _memory_bus(app)
    token = client.post("/api/v1/tokens", json={"name": "fuzz"}).get_json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    # The user's own demo config serves "demo/demo" at full speed, so generated chats end at once.
    fast = client.post("/api/v1/providers",
                       json={"provider": "demo", "name": "fast", "options": {"tokens_per_second": 0}})
    assert fast.status_code == 201, fast.get_json()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:
        # Fresh objects for each operation: an earlier DELETE must not leave only dead ids.
        known = _known_objects(app, client) if operation.path_parameters else {"model": ["demo/demo"]}
        _fuzz(operation, bearer, EXAMPLES, known, failures)
        if operation.path in PUBLIC:
            _fuzz(operation, {}, EXAMPLES, {}, failures)
        else:
            _fuzz(operation, {}, ANONYMOUS_EXAMPLES, {}, failures)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def test_the_fuzzer_reports_a_server_error_and_an_undocumented_status(app):
    """The harness itself: a route answering 500 for some inputs, one answering a status its
    declaration does not list and one whose body breaks its schema are all reported."""
    from bestchat.api.openapi import documented, obj, string

    @app.post("/api/v1/_fragile")
    @documented(body=obj({"word": string(10)}, ("word",)), responses={200: obj({"ok": {"type": "boolean"}})})
    def fragile():
        """Fails on long words."""
        from flask import request

        if len(str((request.get_json(silent=True) or {}).get("word", ""))) > 3:
            raise RuntimeError("boom")
        return {"ok": True}

    @app.get("/api/v1/_teapot")
    @documented(responses={200: obj({"ok": {"type": "boolean"}})})
    def teapot():
        """Answers a status nobody documented."""
        return {"ok": True}, 302, {"Location": "/"}

    @app.get("/api/v1/_liar")
    @documented(responses={200: obj({"ok": {"type": "boolean"}})})
    def liar():
        """Answers a body that does not match its schema."""
        return {"ok": "yes"}

    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/api/v1/_fragile", "/api/v1/_teapot", "/api/v1/_liar"):
            _fuzz(operation, {}, EXAMPLES, {}, failures)
    report = "\n".join(failures)
    assert "POST /api/v1/_fragile: Server error" in report, report
    assert "-> 500" in report
    assert "GET /api/v1/_teapot: Undocumented" in report, report
    assert "GET /api/v1/_liar: Response violates schema" in report, report


# ---- edge inputs schemathesis does not generate ----------------------------------------------
# schemathesis never generates lone surrogates (they cannot be UTF-8 encoded, but JSON escapes
# them) and sends only well-formed JSON as application/json; the reproducers are these.
BAD_TEXTS = ("\ud800", "a\x00b", "\udfff\ud800")
BAD_INTEGERS = (str(2**64), str(-(2**64)), "9" * 40)
BAD_DATES = ("9999-12-31", "0001-01-01", "0000-00-00")
JSON = "application/json"


def _edge_requests(spec: dict, known: dict[str, list[str]]):
    """(method, url, raw body or None, content type, what) for every documented operation:
    each body field set to a bad text (lone surrogates, NUL), a bad key, the body as arrays nested
    100 000 deep, truncated JSON, JSON sent as text/plain or as a form; each query parameter set
    to NUL, a surrogate's raw bytes, integers beyond 64 bits or dates at the calendar's ends."""
    nested = "[" * 100_000 + "]" * 100_000
    for path, methods in spec["paths"].items():
        urls = [path]
        for name, values in known.items():
            if "{" + name + "}" in path:
                urls = [url.replace("{" + name + "}", value) for url in urls for value in values]
        for url, (method, operation) in ((u, m) for u in urls if "{" not in u for m in methods.items()):
            method = method.upper()
            schema = (operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                      .get("schema", {}))
            if schema:
                base = {name: "x" for name in schema.get("required", [])}
                for name in schema.get("properties", {}):
                    for text in BAD_TEXTS:
                        yield method, url, json.dumps({**base, name: text}), JSON, f"{name}={text!r}"
                yield method, url, json.dumps({**base, "k\ud800": "x"}), JSON, "a key with a lone surrogate"
                yield method, url, nested, JSON, "nested 100000 deep"
                yield method, url, '{"a": ', JSON, "truncated JSON"
                yield method, url, json.dumps(base), "text/plain", "text/plain content type"
                yield method, url, json.dumps(base), "application/x-www-form-urlencoded", "form content type"
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                kind = parameter["schema"].get("type")
                values = BAD_INTEGERS if kind == "integer" else BAD_DATES if parameter["schema"].get(
                    "format") == "date" else ("\x00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"))
                for value in (*values, "%00"):
                    yield method, f"{url}?{parameter['name']}={quote(value, safe='%')}", None, None, \
                        f"?{parameter['name']}={value!r}"


def _edge_failures(app, spec: dict, headers: dict[str, str],
                   known: dict[str, list[str]]) -> tuple[int, list[str]]:
    """Send every edge request; the number sent, and each that got a 5xx or a non-JSON error."""
    http = app.test_client()
    failures, sent = [], 0
    for method, url, body, content_type, what in _edge_requests(spec, known):
        if method == "DELETE" and body is None:
            continue  # only ids in the path, and they are the user's real objects
        response = http.open(url, method=method, data=body,
                             headers={**headers, **({"Content-Type": content_type} if content_type else {})})
        sent += 1
        error_shaped = response.is_json and isinstance((response.get_json(silent=True) or {}).get("error"), dict)
        if response.status_code >= 500 or (response.status_code >= 400 and not error_shaped):
            failures.append(f"{method} {url} [{what}] auth={bool(headers)} -> {response.status_code} "
                            f"{response.data[:200]!r}")
    return sent, failures


def test_edge_inputs_never_give_a_server_error(app, client, user):
    _memory_bus(app)
    token = client.post("/api/v1/tokens", json={"name": "edge"}).get_json()["token"]
    spec = client.get("/api/v1/openapi.json").get_json()
    failures, total = [], 0
    for headers in ({"Authorization": f"Bearer {token}"}, {}):
        sent, found = _edge_failures(app, spec, headers, _known_objects(app, client))
        total += sent
        failures += found
    assert total > 500
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)


def test_the_edge_probe_reports_a_server_error(app):
    """The probe itself: a route that fails on a lone surrogate is reported with the input."""
    from bestchat.api.openapi import documented, obj, string

    @app.post("/api/v1/_fragile")
    @documented(body=obj({"word": string(10)}), responses={200: obj({"ok": {"type": "boolean"}})})
    def fragile():
        """Fails on text it cannot encode."""
        from flask import request

        str((request.get_json(silent=True) or {}).get("word", "")).encode()
        return {"ok": True}

    with app.test_request_context():
        from bestchat.api.openapi import build_spec

        spec = build_spec(app)
    spec["paths"] = {"/api/v1/_fragile": spec["paths"]["/api/v1/_fragile"]}
    _, failures = _edge_failures(app, spec, {}, {})
    assert any("POST /api/v1/_fragile [word='\\ud800'] auth=False -> 500" in line for line in failures), failures
