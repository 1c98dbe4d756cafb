"""The OpenAPI document lists every REST route the server has, with its methods."""

from __future__ import annotations

import re

from bestchat.api.openapi import documented_rules


def test_openapi_describes_every_route(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    rules = documented_rules(app)
    assert len(rules) >= 10
    for rule in rules:
        path = re.sub(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>", r"{\1}", rule.rule)
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = spec["paths"][path][method.lower()]
            assert operation["summary"], (path, method)


def test_openapi_marks_authenticated_routes(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "security" in paths["/api/v1/me"]["get"]
    assert "security" not in paths["/api/v1/auth/login"]["post"]
    assert paths["/api/v1/tokens/{token_id}"]["delete"]["parameters"][0]["name"] == "token_id"
    assert paths["/v1/chat/completions"]["post"]["security"] == [{"bearer": []}]


def test_a_new_route_appears_without_editing_the_spec(client, app):
    @app.get("/api/v1/_added")
    def added():
        """A route added at run time."""
        return {}

    assert "/api/v1/_added" in client.get("/api/v1/openapi.json").get_json()["paths"]
