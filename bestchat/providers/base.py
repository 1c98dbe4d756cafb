"""The provider interface every provider plugin implements.

A provider turns a model name, a list of chat messages and options into a stream of typed
events. It does no database or Redis I/O: the generation task around it does. Capabilities are
class attributes; options are a pydantic model with ``extra="forbid"``.

Errors are raised as :class:`ProviderError` subclasses; ``retryable`` tells failover whether
another provider may be tried (only before the first token: after it nothing is retried). Any
other exception is a bug of the plugin: the answer fails ``provider_failed`` naming the provider
and its plugin (:class:`bestchat.providers.registry.ProviderFailed`), and the log has the
traceback.

``docs/plugins.md`` ("The Provider base class") is the reference for plugin authors, who import
these names from :mod:`bestchat.plugin_api`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Iterator, Union

from pydantic import BaseModel, ConfigDict, Field


# ---- events a provider yields ---------------------------------------------------------------

@dataclass(frozen=True)
class TextDelta:
    """A piece of the assistant's answer."""
    text: str


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool to be run."""
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """Token counts for the whole generation, and its cost in USD when the provider knows it
    (None: the server prices it, ``bestchat.services.pricing``). ``cached_tokens`` are the
    prompt tokens the upstream served from its cache (part of ``prompt_tokens``)."""
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None
    cached_tokens: int = 0


@dataclass(frozen=True)
class Finish:
    """The stream ended; ``reason`` as the provider gave it (stop, length, tool_calls...)."""
    reason: str = "stop"


Event = Union[TextDelta, ToolCall, Usage, Finish]


# ---- prices ---------------------------------------------------------------------------------

def as_dollars(value: Any) -> Decimal:
    """An amount of USD as a Decimal (an int, float or string converted through its text)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass(frozen=True)
class Price:
    """A model's price in USD per million tokens: prompt (``input``), completion (``output``)
    and prompt tokens served from the provider's cache (None: charged as input). ``source``
    says who set it (``admin``, ``provider`` or ``model_map``). Numbers are kept as
    :class:`~decimal.Decimal` (an int, float or string is converted)."""
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    source: str = "provider"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_per_million", as_dollars(self.input_per_million))
        object.__setattr__(self, "output_per_million", as_dollars(self.output_per_million))
        if self.cached_input_per_million is not None:
            object.__setattr__(self, "cached_input_per_million", as_dollars(self.cached_input_per_million))


# ---- errors ---------------------------------------------------------------------------------

class ProviderError(Exception):
    """A provider failure with a message safe to show to the user (never contains a key)."""

    retryable: ClassVar[bool] = False
    code: ClassVar[str] = "provider_error"
    # What the upstream said (its error text, the kind of connection failure), key-free but
    # otherwise as received: shown only to the admin who owns the connection, never to users
    # (an address a user chose may be an internal service). ``message`` stays short.
    detail: str | None = None

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """401/403 from the provider, or no key configured."""
    code = "provider_auth"


class ProviderRateLimited(ProviderError):
    """429 from the provider."""
    retryable = True
    code = "provider_rate_limited"


class ProviderUnavailable(ProviderError):
    """Connection error or 5xx."""
    retryable = True
    code = "provider_unavailable"


class ProviderTimeout(ProviderError):
    """No answer (or no next chunk) in time."""
    retryable = True
    code = "provider_timeout"


class ProviderBadRequest(ProviderError):
    """The provider rejected the request (4xx other than auth and rate limit)."""
    code = "provider_bad_request"


class ProviderAddressRefused(ProviderError):
    """The outbound policy refuses the provider's address (``bestchat.security.outbound``);
    nothing was sent. Another target may still serve the request."""
    retryable = True
    code = "provider_address_refused"


# ---- configuration handed to a provider -----------------------------------------------------

class ProviderOptions(BaseModel):
    """Generation options common to every provider. Subclass to add provider-specific ones."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature")
    max_tokens: int | None = Field(None, ge=1, le=1_000_000, description="Upper bound on completion tokens")
    top_p: float | None = Field(None, ge=0, le=1, description="Nucleus sampling")
    timeout: float = Field(60, gt=0, le=600, description="Seconds to wait for the first and each next chunk")
    # Read by the server (bestchat.context.window), never sent to a provider (exclude=True).
    context_window: int | None = Field(
        None, ge=256, le=10_000_000, exclude=True,
        description="The model's input window in tokens, when the provider and litellm's model map do not "
                    "know it (or know it wrong)")


@dataclass
class ProviderSettings:
    """What a provider instance is built with: decrypted key, base URL, models, extra options."""
    api_key: str | None = None
    base_url: str | None = None
    models: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    # The outbound policy every connection of this provider goes through
    # (bestchat.security.outbound.Policy); None means the strictest (public addresses only).
    outbound: Any = None
    # Whether the config is a global one (made by an admin for everyone).
    is_global: bool = False
    # What the upstream listed at the config's last discovery (None: never discovered), and
    # the display names chosen for model ids.
    discovered_models: list[str] | None = None
    model_names: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    provider: str
    context_window: int | None = None
    supports_tools: bool = False
    supports_vision: bool = False
    # The display name chosen for the model (None: its id).
    name: str | None = None


# The most model ids a discovery keeps (a server listing more is cut to this many).
MAX_DISCOVERED_MODELS = 500


class Provider:
    """Base class of every provider. Subclasses set ``name`` and implement :meth:`stream`.

    ``name`` is the provider id used in configs and model ids (``"<name>/<model>"``). A provider
    with ``needs_key`` and ``needs_base_url`` both false is *built in*: offered to every user
    with no config, built with empty settings (``bestchat.providers.registry.is_builtin``).

    Threading: :meth:`stream` runs on a gevent greenlet of a Celery worker (or of the web process
    in embedded mode), many at once per process, which gevent has monkey-patched: the standard
    library's sockets, ``httpx`` and ``requests`` cooperate; a C extension's own blocking I/O or
    a long CPU loop stalls every answer of the process.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    can_stream: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = False
    supports_vision: ClassVar[bool] = False
    needs_key: ClassVar[bool] = True
    needs_base_url: ClassVar[bool] = False
    default_models: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    plugin: ClassVar[str | None] = None  # stamped by the plugin registry

    def __init__(self, settings: ProviderSettings | None = None):
        self.settings = settings or ProviderSettings()

    @property
    def outbound(self):
        """The outbound policy for this provider's connections (``settings.outbound``, else
        the strictest): use it for every connection to a configured address."""
        if self.settings.outbound is None:
            from bestchat.security.outbound import strict_policy  # noqa: PLC0415

            self.settings.outbound = strict_policy()
        return self.settings.outbound

    @classmethod
    def warm_up(cls) -> None:
        """Get ready to serve, once per worker process: import a heavy library, load tables.

        A Celery worker calls it when it starts for every provider in use (an enabled connection
        names it, or it needs neither key nor base URL), before it
        exempts its start-up objects from the garbage collector's full passes
        (``bestchat.gc_freeze``), so what it loads neither delays a user's first answer nor
        lengthens later collections. Web processes never call it (in embedded mode, without a
        worker, what it would load is loaded by the first answer instead). A warm-up that raises
        is logged and counted as a failure of the plugin; the provider stays registered. The
        default does nothing."""

    def models(self) -> list[ModelInfo]:
        """Models this configured provider offers: the config's chosen models, else what its
        upstream listed at the last discovery, else ``default_models``, but only when the
        config has no ``base_url`` (a server the user chose does not serve the provider's
        default model names)."""
        settings = self.settings
        names = settings.models or settings.discovered_models or (
            [] if settings.base_url else list(self.default_models))
        return [ModelInfo(id=m, provider=self.name, supports_tools=self.supports_tools,
                          supports_vision=self.supports_vision, name=settings.model_names.get(m))
                for m in names]

    def discover_models(self) -> list[str] | None:
        """The model ids the configured upstream lists now (its ``GET /v1/models``, or
        whatever the provider's API offers), at most :data:`MAX_DISCOVERED_MODELS`, in the
        upstream's order without duplicates; or None: this provider cannot list its
        upstream's models (the default), and its configs name their models by hand.

        Called when a config is created with a base URL and no chosen models, when its owner
        asks for a refresh, and by a config's test; never on the way to an answer. It goes
        through the provider's outbound policy (:attr:`outbound`) like its chat requests, with
        a short timeout and a bounded answer, and raises a :class:`ProviderError` (key-free)
        when the upstream cannot be reached or answers something that is not a model list."""
        return None

    def context_window(self, model: str) -> int | None:
        """``model``'s input window in tokens, when this provider knows it (None: the server
        asks litellm's model map, then uses ``CONTEXT_DEFAULT_WINDOW``). A config's or a
        conversation's ``context_window`` option overrides it."""
        return None

    def encoding(self, model: str) -> str | None:
        """The tiktoken encoding ``model`` counts tokens with (``"o200k_base"``,
        ``"cl100k_base"``...), or None: the server's ``CONTEXT_DEFAULT_ENCODING``."""
        return None

    def accepts_images(self, model: str) -> bool | None:
        """Whether ``model`` takes image parts; None: ``supports_vision``, else litellm's
        model map decides."""
        return None

    def price(self, model: str) -> Price | None:
        """What ``model`` costs through this provider, as a :class:`Price`; None (the
        default): the provider does not know, and the server uses litellm's model map. A price
        the admin set in the console wins over it; a ``cost`` in the :class:`Usage` the stream
        yields wins over it for that answer. Called when an answer's usage is recorded and by
        the console's Prices page, never on the way to the first token; it does no I/O."""
        return None

    def stream(self, model: str, messages: list[dict[str, Any]], *,
               options: ProviderOptions | None = None,
               tools: list[dict[str, Any]] | None = None,
               tool_choice: Any = None) -> Iterator[Event]:
        """Yield events for one completion; raise a :class:`ProviderError` on failure.

        ``messages`` are OpenAI chat messages: ``{"role", "content"}`` for ``system``, ``user``
        and ``assistant``; an assistant message that called tools has ``"tool_calls": [{"id",
        "type": "function", "function": {"name", "arguments": <JSON text>}}]`` (its ``content``
        may be None), and each call's result follows as ``{"role": "tool", "tool_call_id",
        "content"}``.

        ``tools`` (None: none offered) are OpenAI's ``[{"type": "function", "function":
        {"name", "description", "parameters": <JSON Schema>}}]``; ``tool_choice`` is OpenAI's
        too (``"none"``, ``"auto"``, ``"required"`` or ``{"type": "function", "function":
        {"name"}}``) and is passed only when the caller sets one: a provider without the
        argument still works, without it. A model's calls are yielded as :class:`ToolCall`
        events after its text, each once complete (id, name and the parsed arguments), then
        :class:`Usage` and :class:`Finish` (reason ``tool_calls``). Set ``supports_tools`` when
        the provider passes tools on."""
        raise NotImplementedError
