"""Provider configurations: a user's own keys (bring your own key) and admins' global ones.

Create, read, update, delete and test a config; re-encrypt every stored key after a key
rotation. The API key is write-only: it is encrypted before it is stored, and never returned,
logged, audited or put in an error message (only its last four characters are kept, and only
for keys long enough that they reveal little).

Who sees what: a user sees their own configs and the global ones; only admins change global
configs; another user's config is simply not found.

A key is required when the provider ``needs_key``, unless the config has a ``base_url``: a
base URL points at a server the user chose (a local Ollama, vLLM or LiteLLM proxy), which
often needs no key, so the key is then optional.

A ``base_url`` must pass the outbound policy (``bestchat.security.outbound``) of its config's
owner when it is saved (``base_url_refused``); providers check it again at every connection,
since DNS answers change. Global configs and admins' own configs are trusted (they may use
``OUTBOUND_ADMIN_ALLOW``, by default loopback).

Testing a config answers ``{ok: false, code, error}`` with a short error; the upstream's own
words (``detail``) go only to admins, who own the configs they can test.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import select

from bestchat import crypto
from bestchat.errors import Forbidden, Invalid, NotFound
from bestchat.extensions import db
from bestchat.models import ProviderConfig, User
from bestchat.models.providers import FAILOVER_ORDER
from bestchat.providers import models_cache, registry
from bestchat.providers.base import Provider, ProviderError
from bestchat.providers.upstream_errors import message_for
from bestchat.security import outbound
from bestchat.services import audit

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 4096
LAST4_MIN_KEY_LENGTH = 12
MAX_MODELS = 500
MAX_MODEL_LENGTH = 200
MAX_FALLBACKS = 20
PRIORITY_RANGE = (0, 10_000)
TEST_TIMEOUT_SECONDS = 20
# Fields that can be changed after creation (``provider`` and ``scope`` cannot).
UPDATABLE = ("name", "api_key", "base_url", "enabled_models", "fallbacks", "options",
             "priority", "enabled")


def provider_types() -> list[dict[str, Any]]:
    """The installed providers, for a form that creates a config."""
    return [
        {"name": name, "label": cls.label or name, "needs_key": cls.needs_key,
         "needs_base_url": cls.needs_base_url, "default_models": list(cls.default_models),
         "supports_tools": cls.supports_tools, "supports_vision": cls.supports_vision}
        for name, cls in sorted(registry.provider_classes().items())
    ]


def list_configs(user: User) -> list[ProviderConfig]:
    """The user's configs, then the global ones, in failover order."""
    return list(db.session.scalars(
        select(ProviderConfig)
        .where((ProviderConfig.user_id == user.id) | ProviderConfig.user_id.is_(None))
        .order_by(*FAILOVER_ORDER)
    ))


def can_edit(user: User, config: ProviderConfig) -> bool:
    return config.user_id == user.id or (config.user_id is None and user.is_admin)


def get_config(user: User, config_id: uuid.UUID) -> ProviderConfig:
    """A config the user may see (own or global); :class:`NotFound` otherwise."""
    config = db.session.get(ProviderConfig, config_id)
    if config is None or (config.user_id is not None and config.user_id != user.id):
        raise NotFound("provider config")
    return config


def _editable(user: User, config_id: uuid.UUID) -> ProviderConfig:
    config = get_config(user, config_id)
    if not can_edit(user, config):
        raise Forbidden("forbidden", "global provider configs are read-only to non-admins")
    return config


def create_config(user: User, values: dict[str, Any]) -> ProviderConfig:
    """Create a config from type-checked ``values`` (the request's fields). :class:`Invalid`
    for invalid values, :class:`Forbidden` for ``scope: global`` from a non-admin."""
    scope = values.get("scope") or "user"
    if scope not in ("user", "global"):
        raise Invalid("invalid_field", "'scope' must be 'user' or 'global'")
    if scope == "global" and not user.is_admin:
        raise Forbidden("forbidden", "only admins create global provider configs")
    if not values.get("provider"):
        raise Invalid("missing_field", "'provider' is required")
    cls = _provider_class(values["provider"])
    config = ProviderConfig(user_id=None if scope == "global" else user.id, provider=cls.name,
                            name=cls.label or cls.name, enabled_models=[], fallbacks=[], options={},
                            priority=100, enabled=True)
    _apply(config, cls, {k: v for k, v in values.items() if k in UPDATABLE},
           trusted=scope == "global" or user.is_admin)
    db.session.add(config)
    db.session.flush()
    audit.record("provider_config.created", user.id, "provider_config", config.id,
                 provider=config.provider, name=config.name, scope=scope,
                 has_key=config.api_key_encrypted is not None)
    db.session.commit()
    models_cache.invalidate(config.user_id)
    return config


def update_config(user: User, config_id: uuid.UUID, values: dict[str, Any]) -> ProviderConfig:
    """Change the given fields; an omitted ``api_key`` keeps the stored key, null removes it."""
    config = _editable(user, config_id)
    if values.get("provider", config.provider) != config.provider:
        raise Invalid("invalid_field", "'provider' cannot be changed; create a new config")
    current_scope = "global" if config.user_id is None else "user"
    if values.get("scope", current_scope) != current_scope:
        raise Invalid("invalid_field", "'scope' cannot be changed; create a new config")
    cls = _provider_class(config.provider)
    changes = {k: v for k, v in values.items() if k in UPDATABLE}
    _apply(config, cls, changes, trusted=config.user_id is None or user.is_admin)
    fields = sorted(k for k in changes if k != "api_key")
    if fields:
        audit.record("provider_config.updated", user.id, "provider_config", config.id, fields=fields)
    if "api_key" in changes:
        audit.record("provider_config.key_changed", user.id, "provider_config", config.id,
                     key="removed" if changes["api_key"] is None else "replaced")
    db.session.commit()
    models_cache.invalidate(config.user_id)
    return config


def delete_config(user: User, config_id: uuid.UUID) -> None:
    config = _editable(user, config_id)
    owner = config.user_id
    audit.record("provider_config.deleted", user.id, "provider_config", config.id,
                 provider=config.provider, name=config.name)
    db.session.delete(config)
    db.session.commit()
    models_cache.invalidate(owner)


def check_config(user: User, config_id: uuid.UUID) -> dict[str, Any]:
    """Check a config by asking its provider for one token of its first model.

    ``{"ok": True, "model": ...}`` or ``{"ok": False, "code": ..., "error": ...}``, the error
    key-free and short; admins (who own what they can test) also get the upstream's
    ``detail``.
    """
    config = _editable(user, config_id)
    cls = _provider_class(config.provider)
    try:
        provider = registry.build_provider(cls, config, admin=user.is_admin)
    except crypto.DecryptionError:
        return _failed("key_undecryptable", "the stored key cannot be decrypted; enter it again")
    try:
        models = provider.models()
        if not models:
            return _failed("no_model", "no model to test with: set enabled_models")
        options = cls.Options.model_validate(
            {**provider.settings.options, "max_tokens": 1, "timeout": TEST_TIMEOUT_SECONDS})
        stream = provider.stream(models[0].id, [{"role": "user", "content": "ping"}], options=options)
        try:
            next(iter(stream), None)
        finally:
            getattr(stream, "close", lambda: None)()
    except ProviderError as error:
        registry.redact(error, provider)
        answer = _failed(error.code, error.message)
        if user.is_admin and error.detail:
            answer["detail"] = error.detail
            answer["error"] = message_for(error, owner_admin=True)
        return answer
    except Exception as error:  # a plugin bug is reported, not raised
        log.warning("provider %s test failed: %s", cls.name, type(error).__name__)
        return _failed("provider_failed", f"provider '{cls.name}' failed unexpectedly")
    return {"ok": True, "model": models[0].id}


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": message}


def reencrypt_keys() -> int:
    """Re-encrypt every stored key under the first ``ENCRYPTION_KEYS`` key, in one transaction
    (all or nothing); return how many were re-encrypted."""
    configs = db.session.scalars(
        select(ProviderConfig).where(ProviderConfig.api_key_encrypted.is_not(None)).with_for_update()
    ).all()
    try:
        for config in configs:
            config.api_key_encrypted = crypto.reencrypt(config.api_key_encrypted)
        audit.record("encryption_keys.rotated", None, "provider_config", None, count=len(configs))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return len(configs)


# ---- validation -----------------------------------------------------------------------------

def _provider_class(name: str) -> type[Provider]:
    cls = registry.provider_classes().get(name)
    if cls is None:
        raise Invalid("unknown_provider", f"unknown provider '{name}'")
    return cls


def _apply(config: ProviderConfig, cls: type[Provider], values: dict[str, Any], *, trusted: bool) -> None:
    """Validate ``values`` and set them on ``config``; then check the result is usable.
    ``trusted``: the config is global or an admin's (for the outbound policy)."""
    if "name" in values:
        config.name = values["name"] or cls.label or cls.name
    if "base_url" in values:
        config.base_url = _base_url(values["base_url"])
        if config.base_url:
            _check_address(config.base_url, trusted)
    if "enabled_models" in values:
        config.enabled_models = _models(values["enabled_models"] or [])
    if "fallbacks" in values:
        config.fallbacks = _fallbacks(values["fallbacks"] or [])
    if "options" in values:
        config.options = _options(cls, values["options"] or {})
    if "priority" in values and values["priority"] is not None:
        low, high = PRIORITY_RANGE
        if not low <= values["priority"] <= high:
            raise Invalid("invalid_field", f"'priority' must be between {low} and {high}")
        config.priority = values["priority"]
    if "enabled" in values and values["enabled"] is not None:
        config.enabled = values["enabled"]
    if "api_key" in values:
        _set_key(config, values["api_key"])
    if cls.needs_base_url and not config.base_url:
        raise Invalid("missing_field", f"'base_url' is required for provider '{cls.name}'")
    if cls.needs_key and config.api_key_encrypted is None and not config.base_url:
        raise Invalid("missing_field",
                      f"'api_key' is required for provider '{cls.name}' "
                      "(or set 'base_url' to a server that needs no key)")


def _set_key(config: ProviderConfig, key: str | None) -> None:
    if key is None:
        config.api_key_encrypted = config.key_last4 = None
        return
    key = key.strip()
    if not key:
        raise Invalid("invalid_field", "'api_key' must not be empty")
    if len(key) > MAX_KEY_LENGTH or any(ch.isspace() for ch in key):
        raise Invalid("invalid_field",
                      f"'api_key' must be at most {MAX_KEY_LENGTH} characters without spaces")
    config.api_key_encrypted = crypto.encrypt(key)
    config.key_last4 = key[-4:] if len(key) >= LAST4_MIN_KEY_LENGTH else None


def _base_url(value: str | None) -> str | None:
    if value is None:
        return None
    message = "'base_url' must be an http(s) URL with a host, without credentials"
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for an invalid port
    except ValueError:
        raise Invalid("invalid_field", message) from None
    if parts.scheme not in ("http", "https") or not hostname or parts.username or parts.password \
            or any(ch.isspace() for ch in value) or len(value) > 500:
        raise Invalid("invalid_field", message)
    return value.rstrip("/")


def _check_address(base_url: str, trusted: bool) -> None:
    """``base_url_refused`` when the outbound policy refuses the URL's addresses. A name
    that does not resolve now is accepted: every connection checks it again."""
    try:
        outbound.policy_for(trusted).check_url(base_url)
    except outbound.Unresolvable:
        pass
    except outbound.OutboundRefused as refused:
        raise Invalid("base_url_refused",
                      f"'base_url' is not allowed: {refused.host} is {refused.reason.removeprefix('refused: ')}"
                      " (an admin can allow addresses with OUTBOUND_ALLOW)") from None


def _models(value: list[Any]) -> list[str]:
    if len(value) > MAX_MODELS or not all(
        isinstance(m, str) and m.strip() and len(m) <= MAX_MODEL_LENGTH for m in value
    ):
        raise Invalid("invalid_field",
                      f"'enabled_models' must be up to {MAX_MODELS} non-empty model names")
    return list(dict.fromkeys(m.strip() for m in value))


def _fallbacks(value: list[Any]) -> list[str]:
    if len(value) > MAX_FALLBACKS or not all(_is_model_id(m) for m in value):
        raise Invalid("invalid_field",
                      f"'fallbacks' must be up to {MAX_FALLBACKS} model ids '<provider>/<model>'")
    return list(dict.fromkeys(value))


def _is_model_id(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > MAX_MODEL_LENGTH:
        return False
    provider, _, model = value.partition("/")
    return bool(provider and model)


def _options(cls: type[Provider], value: dict[str, Any]) -> dict[str, Any]:
    try:
        options = cls.Options.model_validate(value)
    except ValidationError as error:
        detail = error.errors()[0]
        where = ".".join(str(part) for part in detail["loc"]) or "options"
        raise Invalid("invalid_field", f"'options.{where}': {detail['msg']}") from None
    kept = options.model_dump(mode="json", exclude_unset=True)
    if options.context_window is not None:  # (a server-side option: excluded from dumps)
        kept["context_window"] = options.context_window
    return kept
