"""``GET /api/v1/openapi.json``: the REST surface, generated from the live URL map.

Every route under ``/api/v1``, ``/v1`` and the health endpoints appears with its methods,
path parameters, summary (the view's docstring) and whether it needs authentication, so the
document cannot drift from the code.
"""

from __future__ import annotations

import inspect
import re

from flask import current_app

from bestchat import __version__
from bestchat.api import bp

DOCUMENTED_PREFIXES = ("/api/v1/", "/v1/")
DOCUMENTED_PATHS = ("/healthz", "/readyz", "/metrics")
_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")


def documented_rules(app) -> list:
    return [
        rule for rule in app.url_map.iter_rules()
        if rule.rule.startswith(DOCUMENTED_PREFIXES) or rule.rule in DOCUMENTED_PATHS
    ]


def build_spec(app) -> dict:
    paths: dict[str, dict] = {}
    for rule in sorted(documented_rules(app), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        doc = inspect.getdoc(view) or rule.endpoint
        summary, _, description = doc.partition("\n")
        path = _PARAM.sub(r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": summary.strip(),
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in _PARAM.findall(rule.rule)
                ],
                "responses": {"default": {"description": "JSON; errors as {error: {code, message}}",
                                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            }
            if description.strip():
                operation["description"] = description.strip()
            if getattr(view, "auth_required", False):
                # The OpenAI-compatible routes take Bearer tokens only.
                operation["security"] = ([{"bearer": []}] if rule.rule.startswith("/v1/")
                                         else [{"bearer": []}, {"session": []}])
            if method in ("POST", "PUT", "PATCH"):
                operation["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "BestChat API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {"Error": {"type": "object", "properties": {"error": {
                "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"]}}}},
        },
    }


@bp.get("/openapi.json")
def openapi():
    """This document: every REST route of the server."""
    return build_spec(current_app._get_current_object())
