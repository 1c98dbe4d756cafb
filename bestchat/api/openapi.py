"""``GET /api/v1/openapi.json``: the REST surface, generated from the live URL map.

Every route under ``/api/v1``, ``/v1`` and the health endpoints appears with its methods,
path parameters, summary (the view's docstring) and whether it needs authentication, so the
document cannot drift from the code. Request and response bodies come from the view itself:
each view carries an :func:`documented` declaration (request body, query parameters, responses
by status), written next to it and built from the same field tables the view checks where there
is one (:func:`fields_schema`). A route without a declaration still appears, with
``x-undocumented: true``; :func:`undocumented_operations` lists those, and a test fails on any.

Responses reference the shared schemas of :data:`SCHEMAS` (one per serializer in
``bestchat.serializers``); every 4xx is the contract's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

from flask import current_app

from bestchat import __version__
from bestchat.api import bp
from bestchat.models.limits import LIMIT_KINDS
from bestchat.models.message_status import MessageStatus
from bestchat.models.tools import Decision, ExecutionStatus
from bestchat.tools.base import RISKS

DOCUMENTED_PREFIXES = ("/api/v1/", "/v1/")
DOCUMENTED_PATHS = ("/healthz", "/readyz")
_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_]+)>")
ATTRIBUTE = "openapi"

# ---- building blocks for the declarations next to the views ---------------------------------

JSON_TYPES = {str: "string", int: "integer", bool: "boolean", float: "number", dict: "object", list: "array"}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    """``schema`` or JSON null (OpenAPI 3.1 spells it as a type list)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if "enum" in schema:  # (an enum lists every allowed value: null too)
        return {**schema, "type": [*kinds, "null"], "enum": [*schema["enum"], None]}
    return {**schema, "type": [*kinds, "null"]}


def string(max_length: int | None = None, **extra: Any) -> dict:
    schema = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def obj(properties: dict[str, dict], required: tuple[str, ...] | list[str] = ()) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: dict) -> dict:
    return {"type": "array", "items": items}


def fields_schema(fields: dict[str, tuple[type, int | None]], required: tuple[str, ...] = ()) -> dict:
    """A request body from a view's ``name -> (type, max length)`` table (the one it checks
    the body with), every field nullable unless required."""
    properties = {}
    for name, (kind, max_length) in fields.items():
        schema = {"type": [JSON_TYPES[k] for k in kind] if isinstance(kind, tuple) else JSON_TYPES[kind]}
        if max_length is not None:
            schema["maxLength"] = max_length
        properties[name] = schema if name in required else nullable(schema)
    return obj(properties, required)


def query(name: str, schema: dict, description: str = "") -> dict:
    parameter = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        parameter["description"] = description
    return parameter


def documented(*, responses: dict[int, dict | None], body: dict | None = None,
               body_required: bool = True, parameters: list[dict] | None = None) -> Callable:
    """Declare a view's request body (a JSON schema, or ``{"content": {media type: schema}}``
    for another media type such as ``multipart/form-data``), query ``parameters`` and ``responses``
    (status -> JSON schema of the body, ``None`` for no body; a schema with
    ``"x-media": "text/event-stream"`` describes each event of a stream; ``{"content": {media
    type: schema}}`` answers in more than one). Put it right under the route decorator; the view
    is returned unchanged."""

    def mark(view: Callable) -> Callable:
        setattr(view, ATTRIBUTE, {"responses": responses, "body": body, "body_required": body_required,
                                  "parameters": parameters or []})
        return view

    return mark


# ---- the shared schemas: one per serializer --------------------------------------------------

_ID = string(format="uuid")
_TIME = nullable(string(format="date-time"))
_STAMPS = {"created_at": _TIME, "updated_at": _TIME}
# One bucket of a usage report; cost is the sum of the known costs, null when every request in
# the bucket had an unknown price.
_TOTALS = {"prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"},
           "cached_tokens": {"type": "integer"}, "cost": {"type": ["number", "null"]},
           "requests": {"type": "integer"}, "unknown_cost_requests": {"type": "integer"}}
# One usage limit in GET /usage: its value, what is used in the current window and when it resets.
_LIMIT_USE = obj({"limit": nullable({"type": "number"}), "used": {"type": "number"},
                  "remaining": nullable({"type": "number"}), "resets_at": _TIME,
                  "source": nullable(string(enum=["user", "group", "plan"])),
                  "unknown_cost_requests": {"type": "integer"}},
                 ("limit", "used", "remaining", "resets_at", "source"))

SCHEMAS: dict[str, dict] = {
    "Error": obj({"error": obj({"code": string(), "message": string()}, ("code", "message"))}, ("error",)),
    "User": obj({
        "id": _ID, "email": string(), "display_name": nullable(string()), "role": string(),
        "disabled": {"type": "boolean"}, "settings": {"type": "object"}, "last_login_at": _TIME, **_STAMPS,
    }, ("id", "email", "display_name", "role", "disabled", "settings", "created_at")),
    "Token": obj({
        "id": _ID, "name": string(), "prefix": string(), "last_used_at": _TIME, "expires_at": _TIME,
        "revoked_at": _TIME, **_STAMPS,
    }, ("id", "name", "prefix", "created_at")),
    "Conversation": obj({
        "id": _ID, "title": nullable(string()), "provider": nullable(string()), "model": nullable(string()),
        "system_prompt": nullable(string()), "settings": {"type": "object"},
        "disabled_tools": array(string()), "context_strategy": nullable(array(string())), **_STAMPS,
    }, ("id", "title", "model", "system_prompt", "settings", "created_at")),
    "Message": obj({
        "id": _ID, "conversation_id": _ID, "parent_id": nullable(_ID), "role": string(),
        "content": nullable(string()), "parts": array({}),
        "status": string(enum=[status.value for status in MessageStatus]),
        "error": nullable(string()), "error_code": nullable(string()),
        "token_count": nullable({"type": "integer"}), "provider": nullable(string()),
        "model": nullable(string()), "last_seq": nullable({"type": "integer"}), "meta": {"type": "object"},
        # (in a conversation's message list: each assistant message's tool calls, in order)
        "tool_executions": array(ref("ToolExecution")), **_STAMPS,
    }, ("id", "conversation_id", "role", "content", "status", "created_at")),
    "ProviderConfig": obj({
        "id": _ID, "provider": string(), "name": nullable(string()), "scope": string(enum=["user", "global"]),
        "has_key": {"type": "boolean"}, "key_last4": nullable(string()), "base_url": nullable(string()),
        "enabled_models": array({}), "discovered_models": nullable(array(string())),
        "models_refreshed_at": nullable(string(format="date-time")),
        "model_names": {"type": "object", "additionalProperties": string()},
        "fallbacks": array({}), "options": {"type": "object"},
        "priority": nullable({"type": "integer"}), "enabled": {"type": "boolean"},
        "editable": {"type": "boolean"},
        "discovery": nullable(obj({"ok": {"type": "boolean"}, "count": {"type": "integer"},
                                   "code": string(), "error": string(), "detail": string()}, ("ok",))),
        **_STAMPS,
    }, ("id", "provider", "scope", "has_key", "enabled", "editable")),
    "Model": obj({"id": string(), "provider": string(), "name": string(), "source": string(),
                  "capabilities": {"type": "object"}}, ("id", "provider", "name")),
    "Tool": obj({
        "name": string(), "description": string(), "parameters": {"type": "object"},
        "risk": string(enum=list(RISKS)), "network": {"type": "boolean"}, "plugin": nullable(string()),
        "timeout": {"type": "number"}, "runnable": {"type": "boolean"},
        "approval": string(enum=[d.value for d in Decision]),
    }, ("name", "description", "parameters", "risk", "network", "runnable", "approval")),
    "Sandbox": obj({"available": {"type": "boolean"}, "method": string(), "detail": string()},
                   ("available", "method", "detail")),
    "ToolExecution": obj({
        "id": _ID, "message_id": _ID, "tool": string(), "call_id": nullable(string()),
        "arguments": {"type": "object"}, "risk": string(enum=list(RISKS)),
        "status": string(enum=[status.value for status in ExecutionStatus]), "result": {},
        "error": nullable(string()), "started_at": _TIME, "finished_at": _TIME,
        "duration_ms": nullable({"type": "integer"}), "approver_id": nullable(_ID), **_STAMPS,
    }, ("id", "message_id", "tool", "arguments", "risk", "status")),
    "AutoApproval": obj({
        "id": _ID, "tool": nullable(string()), "risk_level": nullable(string(enum=list(RISKS))),
        "decision": string(enum=[d.value for d in Decision]), **_STAMPS,
    }, ("id", "tool", "risk_level", "decision")),
    "ContextSummary": obj({
        "id": _ID, "first_message_id": nullable(_ID), "last_message_id": nullable(_ID),
        "covered": {"type": "integer"}, "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"},
        "summary": string(), **_STAMPS,
    }, ("id", "last_message_id", "covered", "input_tokens", "output_tokens", "summary")),
    "ContextStrategies": obj({
        "strategies": array(obj({"name": string(), "description": string(), "plugin": nullable(string())},
                                ("name", "description"))),
        "default": array(string()),
    }, ("strategies", "default")),
    "Upload": obj({
        "id": _ID, "name": string(255), "size": {"type": "integer"}, "sha256": string(),
        "mime": string(), "kind": string(enum=["text", "pdf", "docx", "image"]),
        "text_tokens": nullable({"type": "integer"}),
        "details": obj({"kind": string(), "pages": {"type": "integer"}, "note": string(),
                        "truncated": {"type": "boolean"}}),
        "conversation_id": nullable(_ID), **_STAMPS,
    }, ("id", "name", "size", "sha256", "mime", "kind", "text_tokens", "details", "created_at")),
    "Exchange": obj({"user_message": ref("Message"), "assistant_message": ref("Message")},
                    ("user_message", "assistant_message")),
    "Usage": obj({
        "from": string(format="date"), "to": string(format="date"),
        "days": array(obj({"date": string(format="date"), **_TOTALS}, ("date",))),
        "models": array(obj({"provider": string(), "model": string(), **_TOTALS}, ("provider", "model"))),
        "totals": obj(_TOTALS),
        "plan": nullable(obj({"id": _ID, "name": string(),
                              "source": string(enum=["stripe", "admin", "default"]),
                              "status": nullable(string())}, ("id", "name", "source", "status"))),
        "limits": obj({kind: _LIMIT_USE for kind in LIMIT_KINDS}, LIMIT_KINDS),
    }, ("from", "to", "days", "models", "totals", "plan", "limits")),
    # One event of a text/event-stream answer (schemathesis validates each event against it).
    "SseEvent": obj({
        "event": string(enum=["chunk", "message.completed", "message.failed"]), "id": string(),
        "data": string(contentMediaType="application/json", contentSchema=obj({"type": string()}, ("type",))),
    }, ("event", "data")),
    "OpenAIModel": obj({"id": string(), "object": string(enum=["model"]), "created": {"type": "integer"},
                        "owned_by": string()}, ("id", "object", "owned_by")),
    "OpenAIError": obj({"error": obj({"message": string(), "type": nullable(string()),
                                      "code": nullable(string()), "param": nullable(string())},
                                     ("message",))}, ("error",)),
}

# ---- the document ----------------------------------------------------------------------------


def documented_rules(app) -> list:
    return [
        rule for rule in app.url_map.iter_rules()
        if rule.rule.startswith(DOCUMENTED_PREFIXES) or rule.rule in DOCUMENTED_PATHS
    ]


def undocumented_operations(app) -> list[str]:
    """``METHOD path`` of each documented route whose view declares no bodies (:func:`documented`)."""
    return sorted(
        f"{method} {rule.rule}" for rule in documented_rules(app)
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if getattr(app.view_functions[rule.endpoint], ATTRIBUTE, None) is None
    )


def _security(rule_path: str, method: str) -> list[dict]:
    if rule_path.startswith("/v1/"):
        return [{"bearer": []}]  # the OpenAI-compatible routes take Bearer tokens only
    if method in ("GET", "HEAD", "OPTIONS"):
        return [{"bearer": []}, {"session": []}]
    return [{"bearer": []}, {"session": [], "csrf": []}]  # unsafe methods: the session needs the CSRF header


_REASONS = {200: "OK", 201: "created", 202: "accepted; the answer is generated on a worker",
            204: "done; no body", 503: "unavailable or overloaded (see Retry-After)"}


def _responses(declared: dict | None, openai: bool) -> dict:
    error = ref("OpenAIError" if openai else "Error")
    if declared is None:
        return {"default": {"description": "JSON; errors as {error: {code, message}}",
                            "content": {"application/json": {"schema": error}}}}
    responses: dict[str, dict] = {}
    for status, schema in declared["responses"].items():
        entry: dict[str, Any] = {"description": _REASONS.get(status, "answer")}
        if schema is not None and "content" in schema:  # one schema per media type
            entry["content"] = {media: {"schema": body} for media, body in schema["content"].items()}
        elif schema is not None:
            media = "text/event-stream" if schema.get("x-media") == "text/event-stream" else "application/json"
            clean = {k: v for k, v in schema.items() if k != "x-media"}
            entry["content"] = {media: {"schema": clean}}
        responses[str(status)] = entry
    responses.setdefault("4XX", {"description": "the request is refused; the error names why",
                                 "content": {"application/json": {"schema": error}}})
    return responses


def build_spec(app) -> dict:
    paths: dict[str, dict] = {}
    for rule in sorted(documented_rules(app), key=lambda r: r.rule):
        view = app.view_functions[rule.endpoint]
        declared = getattr(view, ATTRIBUTE, None)
        doc = inspect.getdoc(view) or rule.endpoint
        summary, _, description = doc.partition("\n")
        path = _PARAM.sub(r"{\1}", rule.rule)
        openai = rule.rule.startswith("/v1/")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "summary": summary.strip(),
                "parameters": [
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    for name in _PARAM.findall(rule.rule)
                ] + (declared["parameters"] if declared else []),
                "responses": _responses(declared, openai),
            }
            if description.strip():
                operation["description"] = description.strip()
            if getattr(view, "auth_required", False):
                operation["security"] = _security(rule.rule, method)
            if declared is None:
                operation["x-undocumented"] = True
                if method in ("POST", "PUT", "PATCH"):
                    operation["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
            elif declared["body"] is not None and "content" in declared["body"]:  # not JSON (multipart)
                operation["requestBody"] = {"required": declared["body_required"],
                                            "content": {media: {"schema": body}
                                                        for media, body in declared["body"]["content"].items()}}
            elif declared["body"] is not None:
                operation["requestBody"] = {"required": declared["body_required"],
                                            "content": {"application/json": {"schema": declared["body"]}}}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "BestChat API", "version": __version__,
                 "description": "REST API of BestChat. Errors are {\"error\": {\"code\", \"message\"}} "
                                "with a 4xx/5xx status. Authenticate with an API token "
                                "(Authorization: Bearer) or the web session cookie, which needs the "
                                "X-CSRF-Token header (from login or GET /api/v1/me) on unsafe methods."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a personal API token (bc_...)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session",
                            "description": "the web session cookie set by POST /api/v1/auth/login"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "the session's CSRF token; required with the cookie on unsafe methods"},
            },
            "schemas": SCHEMAS,
        },
    }


@bp.get("/openapi.json")
@documented(responses={200: {"type": "object", "required": ["openapi", "paths"]}})
def openapi():
    """This document: every REST route of the server."""
    return build_spec(current_app._get_current_object())
