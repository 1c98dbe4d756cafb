"""The OpenAPI document: every REST route with its methods, request and response bodies, the
error shape and the security schemes; a valid OpenAPI 3.1 document that schemathesis loads; and
the length limits it states are the ones the server enforces."""

from __future__ import annotations

import re

import jsonschema
import pytest
import schemathesis
from schemathesis.specs.openapi.definitions import OPENAPI_31

from bestchat.api.openapi import documented_rules, undocumented_operations

UNSAFE = ("post", "put", "patch")


@pytest.fixture
def spec(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_openapi_describes_every_route(spec, app):
    assert spec["openapi"].startswith("3.1")
    rules = documented_rules(app)
    assert len(rules) >= 10
    for rule in rules:
        path = re.sub(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = spec["paths"][path][method.lower()]
            assert operation["summary"], (path, method)


def test_it_is_a_valid_openapi_31_document_that_schemathesis_loads(spec):
    jsonschema.Draft202012Validator(OPENAPI_31).validate(spec)
    loaded = schemathesis.openapi.from_dict(spec)
    operations = [result.ok() for result in loaded.get_all_operations()]  # .ok() raises on a broken one
    assert len(operations) == sum(len(methods) for methods in spec["paths"].values())


def test_every_route_declares_its_bodies(spec, app):
    """A route added without a ``@documented`` declaration fails here, naming it."""
    assert undocumented_operations(app) == []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert "x-undocumented" not in operation, where
            successes = {status: answer for status, answer in operation["responses"].items()
                         if status.startswith("2")}
            assert successes, where
            for status, answer in successes.items():
                assert status == "204" or answer["content"], where
            assert operation["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"] in (
                "#/components/schemas/Error", "#/components/schemas/OpenAIError"), where
            if method in UNSAFE and "requestBody" in operation:
                # (JSON, or multipart for an upload)
                [body] = [content["schema"] for content in operation["requestBody"]["content"].values()]
                assert body.get("properties"), where


def test_request_bodies_state_fields_types_and_limits(spec):
    register = spec["paths"]["/api/v1/auth/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert register["required"] == ["email", "password"]
    assert register["properties"]["email"] == {"type": "string", "maxLength": 320, "format": "email"}
    conversation = spec["paths"]["/api/v1/conversations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert conversation["properties"]["title"] == {"type": ["string", "null"], "maxLength": 200}
    assert conversation["properties"]["settings"]["type"] == ["object", "null"]
    chat = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(chat["required"]) == {"model", "messages"}
    assert chat["properties"]["messages"]["minItems"] == 1
    assert {"type": "number", "minimum": 0, "maximum": 2} in [
        {k: v for k, v in option.items() if k in ("type", "minimum", "maximum")}
        for option in chat["properties"]["temperature"]["anyOf"]]


def test_responses_reference_the_serializers_schemas(spec):
    created = spec["paths"]["/api/v1/conversations"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Conversation"}
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
    assert "204" in spec["paths"]["/api/v1/conversations/{conversation_id}"]["delete"]["responses"]
    assert spec["paths"]["/api/v1/messages/{message_id}/stream"]["get"]["responses"]["200"]["content"] == {
        "text/event-stream": {"schema": {"$ref": "#/components/schemas/SseEvent"}}}


def test_openapi_marks_authenticated_routes_and_schemes(spec):
    paths = spec["paths"]
    assert paths["/api/v1/me"]["get"]["security"] == [{"bearer": []}, {"session": []}]
    assert paths["/api/v1/conversations"]["post"]["security"] == [{"bearer": []}, {"session": [], "csrf": []}]
    assert "security" not in paths["/api/v1/auth/login"]["post"]
    assert paths["/api/v1/tokens/{token_id}"]["delete"]["parameters"][0]["name"] == "token_id"
    assert paths["/v1/chat/completions"]["post"]["security"] == [{"bearer": []}]
    schemes = spec["components"]["securitySchemes"]
    assert schemes["csrf"] == {**schemes["csrf"], "type": "apiKey", "in": "header", "name": "X-CSRF-Token"}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["session"]["in"] == "cookie"


def test_a_route_without_a_declaration_is_listed_as_undocumented(client, app):
    @app.post("/api/v1/_added")
    def added():
        """A route added at run time."""
        return {}

    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/_added"]["post"]
    assert operation["x-undocumented"] is True
    assert undocumented_operations(app) == ["POST /api/v1/_added"]


# Operations whose body can be sent with no ids in the path, and a valid value for each field
# they require. ``{n}`` makes an e-mail unique per request.
LIMITED = {
    "/api/v1/auth/register": {"email": "u{n}@example.com", "password": "correct horse battery"},
    "/api/v1/conversations": {},
    "/api/v1/tokens": {"name": "t"},
    "/api/v1/providers": {"provider": "demo"},
}


def test_documented_max_lengths_are_the_enforced_ones(spec, client, user):
    """For every string field with a ``maxLength``: one character more is refused with a 400
    naming the limit, exactly the limit is not refused for its length."""
    counter = iter(range(10_000))
    checked = 0
    for path, required in LIMITED.items():
        schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for name, prop in schema["properties"].items():
            limit = prop.get("maxLength")
            if limit is None:
                continue
            for length, refused in ((limit + 1, True), (limit, False)):
                value = ("u{n}@example.com".format(n=next(counter)).rjust(length, "a")
                         if name == "email" else ("xyz" * length)[:length])
                body = {key: template.format(n=next(counter)) for key, template in required.items()}
                body[name] = value
                response = client.post(path, json=body)
                message = (response.get_json().get("error") or {}).get("message", "") if response.is_json else ""
                too_long = response.status_code == 400 and "longer than" in message
                assert too_long == refused, (path, name, length, response.status_code, message)
            checked += 1
    assert checked >= 8
