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

Models: a config serves its ``enabled_models`` (the ones its owner chose to offer), else the
``discovered_models`` its upstream listed at the last discovery, else the provider's
``default_models``, but only without a ``base_url`` (a server the user chose never falls back to
the provider's default model names). Discovery (:func:`discover`) asks the provider's
:meth:`~bestchat.providers.base.Provider.discover_models`; it runs when a config with a base URL
and no chosen models is created or pointed elsewhere, on request, and in a test. ``model_names``
maps model ids to the display names the model picker shows.

Testing a config answers ``{ok: false, code, error}`` with a short error; the upstream's own
words (``detail``) go only to admins, who own the configs they can test. A test tries a model the
upstream lists (when it can list them), never one it does not.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import func, select

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
MAX_DISPLAY_NAME_LENGTH = 100
PRIORITY_RANGE = (0, 10_000)
TEST_TIMEOUT_SECONDS = 20
# Fields that can be changed after creation (``provider`` and ``scope`` cannot).
UPDATABLE = ("name", "api_key", "base_url", "enabled_models", "model_names", "fallbacks", "options",
             "priority", "enabled")


def provider_types() -> list[dict[str, Any]]:
    """The installed providers, for a form that creates a config."""
    return [
        {"name": name, "label": cls.label or name, "needs_key": cls.needs_key,
         "needs_base_url": cls.needs_base_url, "default_models": list(cls.default_models),
         "supports_tools": cls.supports_tools, "supports_vision": cls.supports_vision,
         "can_discover": can_discover(cls)}
        for name, cls in sorted(registry.provider_classes().items())
    ]


def list_configs(user: User) -> list[ProviderConfig]:
    """The user's configs, then the global ones, in failover order."""
    return list(db.session.scalars(
        select(ProviderConfig)
        .where((ProviderConfig.user_id == user.id) | ProviderConfig.user_id.is_(None))
        .order_by(*FAILOVER_ORDER)
    ))


def global_configs() -> list[ProviderConfig]:
    """The global configs, in failover order (the console lists them)."""
    return list(db.session.scalars(
        select(ProviderConfig).where(ProviderConfig.user_id.is_(None)).order_by(*FAILOVER_ORDER)))


def user_config_counts() -> dict[str, int]:
    """How many users' own configs each provider has (the console shows no more of them:
    their addresses are their owners')."""
    rows = db.session.execute(
        select(ProviderConfig.provider, func.count()).where(ProviderConfig.user_id.is_not(None))
        .group_by(ProviderConfig.provider).order_by(ProviderConfig.provider))
    return {provider: count for provider, count in rows}


def move_global(user: User, config_id: uuid.UUID, direction: str) -> ProviderConfig:
    """Move a global config one place ``"up"`` (tried earlier) or ``"down"`` in the failover
    order: the global configs get priorities 10, 20, 30... in their new order (audited
    ``provider_config.reordered`` with the new order)."""
    if direction not in ("up", "down"):
        raise Invalid("invalid_field", "'direction' must be 'up' or 'down'")
    config = _editable(user, config_id)
    if config.user_id is not None:
        raise NotFound("provider config")
    order = global_configs()
    index = order.index(config)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(order):
        order[index], order[other] = order[other], order[index]
        for position, each in enumerate(order, start=1):
            each.priority = position * 10
        audit.record("provider_config.reordered", user.id, "provider_config", config.id,
                     direction=direction, order=[str(each.id) for each in order])
        db.session.commit()
        models_cache.invalidate(None)
    return config


def can_discover(cls: type[Provider]) -> bool:
    """Whether ``cls`` implements model discovery (it may still decline for some configs)."""
    return cls.discover_models is not Provider.discover_models


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
    for invalid values, :class:`Forbidden` for ``scope: global`` from a non-admin.

    A config with a ``base_url`` and no ``enabled_models`` discovers its models at once; how
    that went is :func:`last_discovery` of the returned config (a failed discovery does not
    stop the config from being saved)."""
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
    if config.base_url and not config.enabled_models:
        _refresh(user, config, cls)
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
    old_base_url = config.base_url
    _apply(config, cls, changes, trusted=config.user_id is None or user.is_admin)
    moved = config.base_url != old_base_url
    if moved:  # another server: what the old one listed says nothing about it
        config.discovered_models = config.models_refreshed_at = None
    fields = sorted(k for k in changes if k != "api_key")
    if fields:
        audit.record("provider_config.updated", user.id, "provider_config", config.id, fields=fields)
    if "api_key" in changes:
        audit.record("provider_config.key_changed", user.id, "provider_config", config.id,
                     key="removed" if changes["api_key"] is None else "replaced")
    db.session.commit()
    if moved and config.base_url and not config.enabled_models:
        _refresh(user, config, cls)
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


def discover(user: User, config_id: uuid.UUID) -> tuple[ProviderConfig, dict[str, Any]]:
    """Ask the config's upstream which models it serves now and keep the list
    (``discovered_models``, ``models_refreshed_at``); the config and how it went:
    ``{"ok": True, "count": n}`` or ``{"ok": False, "code", "error"[, "detail"]}`` (a failure
    keeps the previous list)."""
    config = _editable(user, config_id)
    result = _refresh(user, config, _provider_class(config.provider))
    models_cache.invalidate(config.user_id)
    return config, result


def last_discovery(config: ProviderConfig) -> dict[str, Any] | None:
    """How the discovery made by the last create, update or :func:`discover` of ``config``
    in this request went (None: none ran)."""
    return getattr(config, "_discovery", None)


def _refresh(user: User, config: ProviderConfig, cls: type[Provider]) -> dict[str, Any]:
    """Discover ``config``'s models, store them on success and audit it; the outcome, also
    kept for :func:`last_discovery`."""
    try:
        provider = registry.build_provider(cls, config, admin=user.is_admin)
    except crypto.DecryptionError:
        result = _failed("key_undecryptable", "the stored key cannot be decrypted; enter it again")
    else:
        result, models = _discover_with(provider, cls, user)
        if models is not None:
            config.discovered_models = models
            config.models_refreshed_at = datetime.now(timezone.utc)
            audit.record("provider_config.models_discovered", user.id, "provider_config", config.id,
                         count=len(models))
            db.session.commit()
    config._discovery = result
    return result


def _discover_with(provider: Provider, cls: type[Provider], user: User) -> tuple[dict[str, Any], list[str] | None]:
    """Run ``provider.discover_models()``: the outcome and the ids (None when it failed or
    the provider cannot list models)."""
    try:
        models = provider.discover_models()
    except ProviderError as error:
        return _provider_failure(error, provider, user), None
    except Exception as error:  # a plugin bug is reported, not raised
        log.warning("provider %s discovery failed: %s", cls.name, type(error).__name__)
        return _failed("provider_failed", f"provider '{cls.name}' failed unexpectedly"), None
    if models is None:
        return _failed("discovery_unsupported",
                       f"provider '{cls.name}' cannot list this connection's models: enter them"), None
    models = [m for m in models if isinstance(m, str) and m and len(m) <= MAX_MODEL_LENGTH][:MAX_MODELS]
    return {"ok": True, "count": len(models)}, models


def check_config(user: User, config_id: uuid.UUID) -> dict[str, Any]:
    """Check a config by asking its provider for one token of a model it offers.

    When the provider can list its upstream's models, the list is refreshed first and the
    model tried is the first offered one the upstream lists; offered models it does not list
    are reported as ``not_listed``, and when none is listed nothing is tried
    (``model_not_listed``). When the list cannot be read (some servers do not serve it), the
    first offered model is tried and the answer carries the failed ``discovery``.

    ``{"ok": True, "model": ..., "not_listed": [...]}`` or ``{"ok": False, "code": ...,
    "error": ...}``, the error key-free and short; admins (who own what they can test) also
    get the upstream's ``detail``.
    """
    config = _editable(user, config_id)
    cls = _provider_class(config.provider)
    listed: list[str] | None = None
    discovery: dict[str, Any] | None = None
    if can_discover(cls):
        discovery = _refresh(user, config, cls)
        if discovery["ok"]:
            listed = config.discovered_models
            models_cache.invalidate(config.user_id)
    try:
        provider = registry.build_provider(cls, config, admin=user.is_admin)
    except crypto.DecryptionError:
        return _failed("key_undecryptable", "the stored key cannot be decrypted; enter it again")
    offered = [info.id for info in provider.models()]
    if not offered:
        return _failed("no_model", "no model to test with: choose the models to offer")
    not_listed = [] if listed is None else [m for m in offered if m not in listed]
    candidates = [m for m in offered if m not in not_listed]
    if not candidates:
        answer = _failed("model_not_listed",
                         f"the server lists none of the offered models ({_names(not_listed)}): "
                         "discover its models and choose among them")
        answer["not_listed"] = not_listed
        return answer
    model = candidates[0]
    try:
        options = cls.Options.model_validate(
            {**provider.settings.options, "max_tokens": 1, "timeout": TEST_TIMEOUT_SECONDS})
        stream = provider.stream(model, [{"role": "user", "content": "ping"}], options=options)
        try:
            next(iter(stream), None)
        finally:
            getattr(stream, "close", lambda: None)()
    except ProviderError as error:
        answer = _provider_failure(error, provider, user)
        answer["model"] = model
        return answer
    except Exception as error:  # a plugin bug is reported, not raised
        log.warning("provider %s test failed: %s", cls.name, type(error).__name__)
        return _failed("provider_failed", f"provider '{cls.name}' failed unexpectedly")
    answer = {"ok": True, "model": model, "not_listed": not_listed}
    if discovery is not None and not discovery["ok"] and discovery["code"] != "discovery_unsupported":
        answer["discovery"] = discovery  # (the model answered, though the list could not be read)
    return answer


def _names(models: list[str], shown: int = 5) -> str:
    more = len(models) - shown
    return ", ".join(models[:shown]) + (f" and {more} more" if more > 0 else "")


def _provider_failure(error: ProviderError, provider: Provider, user: User) -> dict[str, Any]:
    """A failed call's answer: key-free; the upstream's detail for admins only."""
    registry.redact(error, provider)
    answer = _failed(error.code, error.message)
    if user.is_admin and error.detail:
        answer["detail"] = error.detail
        answer["error"] = message_for(error, owner_admin=True)
    return answer


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
    if "model_names" in values:
        config.model_names = _model_names(values["model_names"] or {})
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
    if config.model_names:
        _check_named_models(config, cls, strict="model_names" in values)
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


def _model_names(value: dict[str, Any]) -> dict[str, str]:
    """Display names by model id; an empty name removes the entry."""
    if not isinstance(value, dict) or len(value) > MAX_MODELS:
        raise Invalid("invalid_field", f"'model_names' must map up to {MAX_MODELS} model ids to names")
    names: dict[str, str] = {}
    for model, name in value.items():
        if not isinstance(name, str) or len(name) > MAX_DISPLAY_NAME_LENGTH or any(
                ch in name for ch in "\r\n\t"):
            raise Invalid("invalid_field",
                          f"'model_names' values must be names of at most {MAX_DISPLAY_NAME_LENGTH} "
                          "characters on one line")
        if name.strip():
            names[model] = name.strip()
    return names


def _check_named_models(config: ProviderConfig, cls: type[Provider], *, strict: bool) -> None:
    """Display names belong to models the config can serve (chosen or discovered, or a
    default one for a config without a base URL): names given now must (``strict``), names of
    models no longer offered are dropped."""
    known = set(config.enabled_models or ()) | set(config.discovered_models or ())
    if not config.base_url:
        known |= set(cls.default_models)
    unknown = sorted(set(config.model_names) - known)
    if unknown and strict:
        raise Invalid("invalid_field",
                      f"'model_names' names a model this connection does not offer: {unknown[0]!r}")
    if unknown:
        config.model_names = {k: v for k, v in config.model_names.items() if k in known}


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
