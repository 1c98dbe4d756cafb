"""Provider configurations (``/api/v1/providers``): bring-your-own-key and global configs.

The API key is write-only: responses carry only ``has_key`` and ``key_last4``. The rules live
in ``bestchat.services.provider_configs``; this module reads the request and answers.
"""

from __future__ import annotations

from typing import Any

from flask import g

from bestchat.api import bp
from bestchat.api.openapi import array, documented, fields_schema, nullable, obj, ref, string
from bestchat.models import ProviderConfig
from bestchat.security.authn import login_required
from bestchat.security.ratelimit import limit
from bestchat.serializers import provider_config_json
from bestchat.services import provider_configs
from bestchat.validation import field, json_body, parse_uuid

# Body fields and their JSON types; null is allowed (it clears base_url and api_key).
_FIELDS: dict[str, tuple[type, int | None]] = {
    "provider": (str, 100), "name": (str, 100), "scope": (str, 16), "api_key": (str, None),
    "base_url": (str, 500), "enabled_models": (list, None), "model_names": (dict, None),
    "fallbacks": (list, None),
    "options": (dict, None), "priority": (int, None), "enabled": (bool, None),
}


def _values() -> dict[str, Any]:
    """The request's known fields, type-checked; only those present in the body."""
    body = json_body()
    return {
        name: None if body[name] is None else field(body, name, kind, max_length=max_length)
        for name, (kind, max_length) in _FIELDS.items() if name in body
    }


def _json(config: ProviderConfig) -> dict:
    """A config as its viewer may see it: a global config's key tail, address, options and
    discovered models are the admins' (they tell an ordinary user where the server's own
    connections go). ``discovery``: how a discovery made by this request went, if one ran."""
    data = provider_config_json(config)
    data["editable"] = provider_configs.can_edit(g.user, config)
    if not data["editable"]:
        data["key_last4"] = None
        data["base_url"] = None
        data["options"] = {}
        data["discovered_models"] = None
    discovery = provider_configs.last_discovery(config)
    if discovery is not None:
        data["discovery"] = discovery
    return data


@bp.get("/providers")
@documented(responses={200: obj({"providers": array(ref("ProviderConfig")), "provider_types": array({})},
                                ("providers", "provider_types"))})
@login_required
def list_providers():
    """The user's provider configs and the global ones (``editable`` false for non-admins),
    plus the installed ``provider_types``."""
    return {
        "providers": [_json(c) for c in provider_configs.list_configs(g.user)],
        "provider_types": provider_configs.provider_types(),
    }


@bp.post("/providers")
@documented(body=fields_schema(_FIELDS, required=("provider",)), responses={201: ref("ProviderConfig")})
@login_required
def create_provider():
    """Create a config. Body: {provider, name?, api_key?, base_url?, enabled_models?,
    model_names?, fallbacks?, priority?, enabled?, options?, scope?: "user"|"global" (admins)}.
    201. With a base_url and no enabled_models, the server's models are discovered at once:
    ``discovery`` says how that went (a failure still saves the config)."""
    return _json(provider_configs.create_config(g.user, _values())), 201


@bp.get("/providers/<config_id>")
@documented(responses={200: ref("ProviderConfig")})
@login_required
def get_provider(config_id: str):
    """One config (the user's own or a global one)."""
    return _json(provider_configs.get_config(g.user, parse_uuid(config_id, "provider config")))


@bp.put("/providers/<config_id>")
@documented(body=fields_schema(_FIELDS), responses={200: ref("ProviderConfig")})
@login_required
def update_provider(config_id: str):
    """Update the given fields. An omitted api_key keeps the stored key; null removes it."""
    config_uuid = parse_uuid(config_id, "provider config")
    return _json(provider_configs.update_config(g.user, config_uuid, _values()))


@bp.delete("/providers/<config_id>")
@documented(responses={204: None})
@login_required
def delete_provider(config_id: str):
    """Delete a config. 204."""
    provider_configs.delete_config(g.user, parse_uuid(config_id, "provider config"))
    return "", 204


@bp.post("/providers/<config_id>/discover")
@documented(responses={200: ref("ProviderConfig")})
@login_required
def discover_provider(config_id: str):
    """Refresh the config's ``discovered_models`` from its upstream (``GET {base_url}/models``);
    the config, with ``discovery``: {ok, count} or {ok: false, code, error, detail?}.
    Rate-limited with the test (``RATELIMIT_PROVIDER_TEST``): each is an outbound request."""
    config_uuid = parse_uuid(config_id, "provider config")
    limit("RATELIMIT_PROVIDER_TEST", str(g.user.id))
    config, _ = provider_configs.discover(g.user, config_uuid)
    return _json(config)


@bp.post("/providers/<config_id>/test")
@documented(responses={200: obj({"ok": {"type": "boolean"}, "model": nullable(string()),
                                 "not_listed": array(string()),
                                 "error": nullable({"type": ["string", "object"]}),
                                 "code": nullable(string()), "detail": nullable(string())}, ("ok",))})
@login_required
def test_provider(config_id: str):
    """Check a config with a one-token request to a model its server lists: {ok, model,
    not_listed} or {ok: false, code, error, model?, not_listed?, detail?} (key-free;
    ``detail``, the upstream's own words, only for admins; ``model_not_listed`` when the server
    lists none of the offered models). Rate-limited per user (``RATELIMIT_PROVIDER_TEST``):
    each test is an outbound request."""
    config_uuid = parse_uuid(config_id, "provider config")
    limit("RATELIMIT_PROVIDER_TEST", str(g.user.id))
    return provider_configs.check_config(g.user, config_uuid)
