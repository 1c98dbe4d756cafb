"""Which provider serves a model for a user, and streaming with failover between them.

The generation pipeline calls three functions:

- :func:`available_models` lists what a user may use (their enabled configs, global configs,
  and the keyless built-in providers such as ``demo``), cached per user in Redis; the models of
  the operator (global and built-in) are only those the user's groups allow
  (:mod:`bestchat.services.groups`).
- :func:`resolve_targets` turns a model id ``"<provider>/<model>"`` into an ordered list of
  :class:`Target`: the user's own configs, then global configs (lower ``priority`` first), then
  a keyless built-in provider, then the configs' ``fallbacks`` resolved the same way. The
  operator's targets (global and built-in) of a model the user's groups do not allow are left
  out (:class:`ModelNotAllowed` when nothing else serves it).
- :func:`stream_with_failover` streams from the first target that answers: a retryable error
  (connection, timeout, 5xx, 429) before the first event moves on to the next target; after the
  first event nothing is retried. A provider raising anything but a :class:`ProviderError` (a
  bug of its plugin) is logged with its traceback, counted as a failure of its plugin and
  reported as :class:`ProviderFailed`, which names the provider and the plugin but never the
  exception's text.

A conversation's ``settings`` become the options of every provider its answers reach; they
are checked once, when the conversation is created or changed (:func:`check_settings`), not
when an answer is generated.

Provider classes come from the plugin manager (``bestchat.plugins.get_providers()``). Errors
raised from here never contain an API key.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from flask import current_app
from pydantic import ValidationError
from sqlalchemy import bindparam, or_, select

from bestchat import crypto, plugins
from bestchat.database import read_beside
from bestchat.errors import Invalid, ModelNotAllowed, UnknownModel
from bestchat.extensions import db
from bestchat.security import outbound
from bestchat.models import ProviderConfig, User
from bestchat.models.providers import FAILOVER_ORDER
from bestchat.providers import models_cache
from bestchat.providers.base import (
    Event, ModelInfo, Provider, ProviderAuthError, ProviderBadRequest, ProviderError,
    ProviderOptions, ProviderSettings,
)
from bestchat.redaction import redact_key
from bestchat.services import groups

log = logging.getLogger(__name__)


@dataclass
class Target:
    """One way to serve a model: a provider instance configured with a (decrypted) key.

    ``config_id`` is None for a keyless built-in provider.
    """

    provider_name: str
    model: str
    config_id: uuid.UUID | None
    provider: Provider

    @property
    def model_id(self) -> str:
        return f"{self.provider_name}/{self.model}"


class ProviderKeyMissing(ProviderAuthError):
    """The model's provider needs an API key and the user has no usable one."""

    code = "provider_key_missing"


class ProviderFailed(ProviderError):
    """A provider raised something other than a :class:`ProviderError`: a bug of its plugin.
    The message names the provider and its plugin; what the exception said goes to the log
    only (it may hold an address or a secret)."""

    code = "provider_failed"

    @classmethod
    def of(cls, provider: Provider) -> ProviderFailed:
        plugin = f" (plugin {provider.plugin})" if provider.plugin else ""
        return cls(f"the provider '{provider.name}'{plugin} failed: an unexpected error")


def unknown_model(model_id: str) -> UnknownModel:
    return UnknownModel(f"model '{model_id}' is not available")


def provider_classes() -> dict[str, type[Provider]]:
    """Installed and enabled provider classes by name."""
    return plugins.get_providers()


def is_builtin(cls: type[Provider]) -> bool:
    """A provider usable with no config at all (no key, no base URL), e.g. ``demo``."""
    return not cls.needs_key and not cls.needs_base_url


def build_provider(cls: type[Provider], config: ProviderConfig | ConfigValues | None, *,
                   admin: bool | Callable[[], bool] = False) -> Provider:
    """An instance of ``cls`` for ``config`` (decrypting its key), or a bare built-in one.

    Its connections go through the outbound policy of its owner: trusted for a global config,
    and for a user's own config when that user is an ``admin`` (a bool, or a function asked only
    if an address needs it)."""
    if config is None:
        return cls(ProviderSettings(outbound=outbound.policy_for(False)))
    is_global = config.user_id is None
    key = crypto.decrypt(config.api_key_encrypted) if config.api_key_encrypted else None
    return cls(ProviderSettings(
        api_key=key, base_url=config.base_url, models=list(config.enabled_models or []),
        options=dict(config.options or {}), is_global=is_global,
        outbound=outbound.policy_for(True if is_global else admin),
        discovered_models=config.discovered_models, model_names=dict(getattr(config, "model_names", None) or {}),
    ))


def user_is_admin(user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` is an admin, read on its own connection (callers may be streaming)."""
    rows = read_beside(select(User.role).where(User.id == user_id))
    return bool(rows) and rows[0][0] == "admin"


def redact(error: ProviderError, provider: Provider) -> ProviderError:
    """``error`` with the provider's key removed from its message in any common encoding
    (providers should never put it there; this makes sure)."""
    message = redact_key(error.message, provider.settings.api_key)
    if message != error.message:
        error.message = message
        error.args = (message,)
    if error.detail:
        error.detail = redact_key(error.detail, provider.settings.api_key)
    return error


def enabled_configs(user_id: uuid.UUID) -> list[ProviderConfig]:
    """The user's enabled configs, then the enabled global ones, each by priority."""
    return list(db.session.scalars(_ENABLED_CONFIGS, {"user_id": user_id}))


class ConfigValues(NamedTuple):
    """What :func:`resolve_targets` reads of a :class:`ProviderConfig`, as plain values (the
    generation job reads them with its claim: :mod:`bestchat.store`). Its fields are the
    columns read, in this order."""

    id: uuid.UUID
    provider: str
    api_key_encrypted: str | None
    base_url: str | None
    enabled_models: list[Any]
    fallbacks: list[Any]
    options: dict[str, Any]
    user_id: uuid.UUID | str | None = None  # None: a global config
    discovered_models: list[Any] | None = None  # None: never discovered


# Built once: they are read at the start of every generation.
_ENABLED = (ProviderConfig.enabled.is_(True),
            or_(ProviderConfig.user_id == bindparam("user_id"), ProviderConfig.user_id.is_(None)))
_ENABLED_CONFIGS = select(ProviderConfig).where(*_ENABLED).order_by(*FAILOVER_ORDER)
ENABLED_CONFIG_VALUES = (select(*(getattr(ProviderConfig, name) for name in ConfigValues._fields))
                         .where(*_ENABLED).order_by(*FAILOVER_ORDER))


# ---- listing ------------------------------------------------------------------------------

def available_models(user: User) -> list[dict[str, Any]]:
    """What ``user`` may use: ``{id, provider, name, source, capabilities}`` per model, ``id``
    unique (``source`` is ``user``, ``global`` or ``builtin``, the first that offers it). The
    cached list is every model of the user's configs and the operator's; the groups' rule is
    applied on each read (its own cache entry is checked against the groups' generation)."""
    classes = provider_classes()
    result = models_cache.get(user.id, classes)
    if result is None:
        result = _listed(enabled_configs(user.id), classes, user.is_admin)
        models_cache.put(user.id, classes, result)
    allowed = groups.access_for(user)
    if allowed.models is None:
        return result
    return [model for model in result if model["source"] == "user" or allowed.allows_model(model["id"])]


def operator_models() -> list[dict[str, Any]]:
    """Every model the operator offers (enabled global configs and built-in providers), for
    the console's choices; nothing is cached."""
    configs = db.session.scalars(select(ProviderConfig).where(ProviderConfig.enabled.is_(True),
                                                              ProviderConfig.user_id.is_(None))
                                 .order_by(*FAILOVER_ORDER))
    return _listed(list(configs), provider_classes(), True)


def _listed(configs: Sequence[ProviderConfig], classes: dict[str, type[Provider]],
            admin: bool) -> list[dict[str, Any]]:
    """The models of ``configs`` (in order), then of the built-in providers, each id once."""
    models: dict[str, dict[str, Any]] = {}
    for config in configs:
        cls = classes.get(config.provider)
        if cls is not None:
            source = "global" if config.user_id is None else "user"
            for info in _config_models(cls, config, admin):
                models.setdefault(f"{cls.name}/{info.id}", _model_json(cls, info, source))
    for cls in classes.values():
        if is_builtin(cls):
            for info in _builtin_models(cls):
                models.setdefault(f"{cls.name}/{info.id}", _model_json(cls, info, "builtin"))
    return sorted(models.values(), key=lambda m: m["id"])


def _builtin_models(cls: type[Provider]) -> list[ModelInfo]:
    """The models of a built-in provider, with no config (none when its ``models()`` fails)."""
    try:
        return cls(ProviderSettings()).models()
    except Exception as error:  # a plugin bug must not break the model list
        log.exception("provider %s (plugin %s) failed to list its models: %s", cls.name, cls.plugin,
                      type(error).__name__)
        plugins.count_failure(cls.plugin)
    return []


def _config_models(cls: type[Provider], config: ProviderConfig, admin: bool) -> list[ModelInfo]:
    try:
        return build_provider(cls, config, admin=admin).models()
    except crypto.DecryptionError as error:
        log.warning("provider config %s skipped: %s", config.id, error)
    except ProviderError as error:
        log.warning("provider config %s could not list models (%s); using its configured list",
                    config.id, error.code)
        return [ModelInfo(id=name, provider=cls.name) for name in config.enabled_models or []]
    except Exception as error:  # a plugin bug must not break the model list
        log.exception("provider %s (plugin %s) failed to list models for config %s: %s",
                      cls.name, cls.plugin, config.id, type(error).__name__)
        plugins.count_failure(cls.plugin)
    return []


def _model_json(cls: type[Provider], info: ModelInfo, source: str) -> dict[str, Any]:
    return {
        "id": f"{cls.name}/{info.id}", "provider": cls.name, "name": info.name or info.id, "source": source,
        "capabilities": {
            "streaming": cls.can_stream, "tools": info.supports_tools,
            "vision": info.supports_vision, "context_window": info.context_window,
        },
    }


# ---- resolving ----------------------------------------------------------------------------

def resolve_targets(user_id: uuid.UUID, model_id: str | None,
                    configs: Sequence[ProviderConfig | ConfigValues] | None = None,
                    access: groups.Access | None = None) -> list[Target]:
    """Every target that may serve ``model_id`` (None: ``DEFAULT_MODEL``), in failover order,
    from ``configs`` (the user's :func:`enabled_configs`, read here when not given) and the
    built-in providers. The operator's targets (global configs, built-in providers) count only
    for models ``access`` allows (the user's :func:`groups.access`, read here when not given).

    Raises :class:`UnknownModel` when nothing can serve it, :class:`ModelNotAllowed` when only
    the operator's targets could and the user's groups do not allow it, and
    :class:`ProviderKeyMissing` when its provider needs a key the user does not have.
    Fallbacks that cannot be served are skipped; each model id is expanded once (no cycles).
    """
    model_id = model_id or current_app.config["DEFAULT_MODEL"]
    classes = provider_classes()
    if configs is None:
        configs = enabled_configs(user_id)
    admin = functools.cache(lambda: user_is_admin(user_id))
    if access is None:
        access = groups.access(user_id, admin=admin)
    targets, pending = _serving(model_id, classes, configs, admin, access.allows_model)
    seen_models = {model_id}
    seen_targets = {(t.config_id, t.model_id) for t in targets}
    while pending:
        fallback = pending.pop(0)
        if fallback in seen_models:
            continue
        seen_models.add(fallback)
        try:
            more, fallbacks = _serving(fallback, classes, configs, admin, access.allows_model)
        except (UnknownModel, ModelNotAllowed, ProviderAuthError) as error:
            log.info("fallback %s skipped: %s", fallback, error)
            continue
        pending.extend(fallbacks)
        for target in more:
            if (target.config_id, target.model_id) not in seen_targets:
                seen_targets.add((target.config_id, target.model_id))
                targets.append(target)
    return targets


def served_by_own_config(user_id: uuid.UUID, model_id: str) -> bool:
    """Whether one of the user's own enabled configs serves ``model_id`` (the groups' rule
    does not apply to those)."""
    own = [config for config in enabled_configs(user_id) if config.user_id is not None]
    try:
        targets, _fallbacks = _serving(model_id, provider_classes(), own, lambda: False, lambda _model: False)
    except (UnknownModel, ModelNotAllowed, ProviderAuthError):
        return False
    return any(target.config_id is not None for target in targets)


def _serving(model_id: str, classes: dict[str, type[Provider]],
             configs: Sequence[ProviderConfig | ConfigValues],
             admin: Callable[[], bool], allowed: Callable[[str], bool]) -> tuple[list[Target], list[str]]:
    """The targets serving ``model_id`` directly, and the fallbacks their configs name; the
    operator's only when ``allowed(model_id)``."""
    provider_name, _, model = model_id.partition("/")
    cls = classes.get(provider_name)
    if cls is None or not model:
        raise unknown_model(model_id)
    targets: list[Target] = []
    fallbacks: list[str] = []
    key_missing = cls.needs_key and not any(c.provider == provider_name for c in configs)
    operator_allowed = allowed(model_id)
    refused = False
    for config in configs:
        if config.provider != provider_name or not config_serves(config, model):
            continue
        if config.user_id is None and not operator_allowed:
            refused = True
            continue
        if cls.needs_key and not config.api_key_encrypted and not config.base_url:
            key_missing = True
            continue
        try:
            provider = build_provider(cls, config, admin=admin)
        except crypto.DecryptionError as error:
            log.warning("provider config %s skipped: %s", config.id, error)
            key_missing = True
            continue
        targets.append(Target(provider_name, model, config.id, provider))
        fallbacks.extend(config.fallbacks or [])
    if is_builtin(cls) and (not cls.default_models or model in cls.default_models):
        if operator_allowed:
            targets.append(Target(provider_name, model, None, build_provider(cls, None)))
        else:
            refused = True
    if targets:
        return targets, fallbacks
    if refused:
        raise ModelNotAllowed(model_id, param="model")
    if key_missing:
        raise ProviderKeyMissing(
            f"provider '{provider_name}' needs an API key: add one in your provider settings"
        )
    raise unknown_model(model_id)


def config_serves(config: ProviderConfig | ConfigValues, model: str) -> bool:
    """Whether ``config`` serves ``model``: one of its chosen models, else one its upstream
    listed at the last discovery; a config with neither serves any model of its provider
    (the upstream says whether it exists)."""
    if config.enabled_models:
        return model in config.enabled_models
    if config.discovered_models:
        return model in config.discovered_models
    return True


# ---- conversation settings ----------------------------------------------------------------

# Settings the server itself keeps in a conversation (not provider options), with their types.
SERVER_SETTINGS: dict[str, type] = {"created_via": str}


def check_settings(settings: dict[str, Any]) -> None:
    """:class:`Invalid` unless every one of a conversation's ``settings`` is an option of an installed
    provider (or a :data:`SERVER_SETTINGS` entry) and valid for every provider that has it.

    All providers, not only the conversation model's: a message may name another model, and
    failover may reach another provider; each receives the settings it knows. The providers'
    ``Options`` bound the values (so no setting can make one answer hold a slot for hours).
    Errors name the setting: ``unknown_setting`` or ``invalid_setting``."""
    classes = provider_classes()
    for name, value in settings.items():
        if name in SERVER_SETTINGS:
            if not isinstance(value, SERVER_SETTINGS[name]) or len(str(value)) > 100:
                raise _invalid_setting(name, "must be a short text (it is set by the server)")
            continue
        owners = [cls for cls in classes.values() if name in cls.Options.model_fields]
        if not owners:
            raise Invalid("unknown_setting", f"'settings.{name}' is not an option of any installed provider")
        for cls in owners:
            try:
                cls.Options.model_validate({name: value})
            except ValidationError as error:
                about = [d for d in error.errors() if d["loc"] and d["loc"][0] == name]
                if about:  # (errors about other, required fields are not this setting's)
                    raise _invalid_setting(name, about[0]["msg"]) from None


def _invalid_setting(name: str, reason: str) -> Invalid:
    return Invalid("invalid_setting", f"'settings.{name}': {reason}")


# ---- streaming ----------------------------------------------------------------------------

def stream_with_failover(targets: list[Target], messages: list[dict[str, Any]],
                         options: ProviderOptions | dict[str, Any] | None = None,
                         tools: list[dict[str, Any]] | None = None,
                         tool_choice: Any = None) -> Iterator[tuple[Target, Event]]:
    """Yield ``(target, event)`` from the first target that answers.

    ``tools`` and ``tool_choice`` are passed to the provider (OpenAI's shapes, see
    :meth:`Provider.stream`); ``tool_choice`` only when given, so providers whose ``stream``
    does not take it keep working without it.

    A retryable :class:`ProviderError` before a target's first event moves on to the next
    target; any error after the first event, or a non-retryable one, propagates. When every
    target fails, the last error is raised. Any other exception (a bug of the provider's
    plugin) is logged with its traceback, counted as a failure of the plugin and raised as
    :class:`ProviderFailed`, before or after the first event; no other target is tried.
    ``options`` are merged over each config's own options; options the target's provider does
    not know are dropped for it.
    """
    if not targets:
        raise ValueError("stream_with_failover needs at least one target")
    last_error: ProviderError | None = None
    choice = {} if tool_choice is None else {"tool_choice": tool_choice}
    for target in targets:
        started = False
        events: Iterator[Event] | None = None
        try:
            events = target.provider.stream(target.model, messages,
                                            options=_options(target.provider, options), tools=tools,
                                            **choice)
            for event in events:
                started = True
                yield target, event
            return
        except ProviderError as error:
            redact(error, target.provider)
            if started or not error.retryable:
                raise
            log.warning("%s failed before its first event (%s); trying the next target",
                        target.model_id, error.code)
            last_error = error
        except Exception as error:  # a bug of the provider plugin: logged, counted, named to the user
            provider = target.provider
            log.exception("provider %s (plugin %s) raised %s streaming %s%s", provider.name, provider.plugin,
                          type(error).__name__, target.model_id, " after its first event" if started else "")
            plugins.count_failure(provider.plugin)
            raise ProviderFailed.of(provider) from error
        finally:  # also when the caller stops early (cancel): release the connection now
            getattr(events, "close", lambda: None)()
    raise last_error


def _options(provider: Provider, options: ProviderOptions | dict[str, Any] | None) -> ProviderOptions:
    """The provider's Options from its config's options overlaid with the call's."""
    if isinstance(options, ProviderOptions):
        options = options.model_dump(exclude_unset=True)
    fields = provider.Options.model_fields
    merged = {**provider.settings.options, **{k: v for k, v in (options or {}).items() if k in fields}}
    try:
        return provider.Options.model_validate(merged)
    except ValidationError as error:
        detail = error.errors()[0]
        where = ".".join(str(part) for part in detail["loc"])
        raise ProviderBadRequest(f"invalid option '{where}': {detail['msg']}") from None
