"""BestChat provider ``litellm``: any model litellm can call, by its litellm model string.

Model names are litellm's (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
``ollama/llama3.2`` ...); the configured key and base URL go to litellm as ``api_key`` and
``api_base``. Usage comes from the stream (``stream_options.include_usage``) and the cost from
litellm's bundled model price map.

litellm is heavy (hundreds of MB, seconds to import), so this module does not import it: the
Celery worker imports it when it starts if a litellm connection exists
(:meth:`LiteLLMProvider.warm_up`, before the worker freezes its start-up objects), else (and
in a process without a worker, embedded mode) at its first litellm answer.
Everything stays offline: the bundled price map is used instead of fetching one
(``LITELLM_LOCAL_MODEL_COST_MAP``) and litellm points tiktoken at its bundled encodings itself.
No litellm retries run: failover decides what to retry.

Credentials: only model families that take the configured key explicitly are served
(:data:`EXPLICIT_KEY_FAMILIES`). Families that sign requests with credentials found in the
server's environment or instance role (bedrock, sagemaker, vertex_ai, azure, watsonx...) are
refused, unless the operator lists them in ``LITELLM_AMBIENT_CREDENTIAL_PROVIDERS``, and then
for global configs only. The family is litellm's own reading of the model string
(``litellm.get_llm_provider``), so ``anthropic.claude-v2`` (bedrock without a prefix) is caught.

Addresses: the configured base URL is checked with the config's outbound policy before every
call. For the OpenAI family (``openai/``, ``custom_openai/``) litellm is given an httpx client
(as its ``HTTPHandler``) whose connections go through the policy (resolved once, checked,
pinned). Other families open their own connections: for them a base URL host name must be
fixed (a literal address, or a host the operator lists in ``OUTBOUND_ALLOW``/
``OUTBOUND_ADMIN_ALLOW``) unless the config is trusted (global or an admin's), since the name
could resolve differently when litellm connects.
"""

from __future__ import annotations

import functools
import os
import ssl
from types import ModuleType
from typing import Any, Iterator

import httpx

from bestchat.plugin_api import (
    Event, Finish, OutboundRefused, Provider, ProviderAddressRefused, ProviderBadRequest, ProviderError,
    ProviderOptions, ProviderTimeout, ProviderUnavailable, TextDelta, ToolCallAssembler, Usage, error_for_status,
    hookimpl, list_models, redact_key, with_detail,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")
# The OpenAI family through litellm's own HTTP handler (its SSE parser, like every other family)
# rather than through the OpenAI SDK, whose model construction costs ~0.2 ms of CPU per chunk;
# it takes the pinned client as an ``HTTPHandler`` (see ``pinned_handler``).
os.environ["EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER"] = "True"


@functools.cache
def load_litellm() -> ModuleType:
    """Import litellm once, quietly: no debug banners, no message logging in callbacks, and no
    per-chunk success logging (BestChat records usage itself, and that logging costs CPU on
    every streamed chunk)."""
    import litellm  # noqa: PLC0415 - deliberately lazy, see the module docstring

    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    litellm.disable_streaming_logging = True
    tls_context()
    return litellm


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every pinned client (httpx's defaults: certifi's CA bundle), built
    once: loading the CA bundle takes 30-40 ms of CPU, which a context per answer would cost
    every answer before its first token."""
    return httpx.create_ssl_context()


NO_KEY = "no-key"

# litellm families that send the configured key (or none) and never reach for credentials in
# the server's environment, files or instance role once a key is given.
EXPLICIT_KEY_FAMILIES = frozenset((
    "openai", "custom_openai", "openai_like", "text-completion-openai", "hosted_vllm", "lm_studio",
    "llamafile", "ollama", "ollama_chat", "anthropic", "groq", "mistral", "codestral", "deepseek",
    "together_ai", "openrouter", "fireworks_ai", "cohere", "cohere_chat", "xai", "gemini",
    "perplexity", "deepinfra", "cerebras", "nvidia_nim", "sambanova", "huggingface",
    "litellm_proxy",
))
# Families whose connections litellm makes through an httpx client we can hand it.
PINNED_FAMILIES = frozenset(("openai", "custom_openai"))


@functools.cache
def known_families() -> frozenset[str]:
    """Every provider family litellm knows (the prefixes of its model strings)."""
    from litellm.types.utils import LlmProviders  # noqa: PLC0415 - imported with litellm

    return frozenset(family.value for family in LlmProviders)


def ambient_families() -> frozenset[str]:
    """The families the operator lets global configs use with the server's own credentials."""
    from flask import current_app, has_app_context  # noqa: PLC0415

    if not has_app_context():
        return frozenset()
    return frozenset(current_app.config.get("LITELLM_AMBIENT_CREDENTIAL_PROVIDERS") or ())


class LiteLLMProvider(Provider):
    """Streams chat completions through ``litellm.completion``."""

    name = "litellm"
    label = "litellm (100+ providers)"
    supports_tools = True
    # A key, or a base URL for keyless local servers (ollama/...), is configured per user or
    # globally: never the server's own environment, which would hand it to every user.
    needs_key = True
    default_models = ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest")

    @classmethod
    def warm_up(cls) -> None:
        """Import litellm in the worker at start, not at its first answer."""
        load_litellm()

    def encoding(self, model: str) -> str | None:
        """tiktoken's encoding for an OpenAI model name (None for others: the server's default)."""
        from tiktoken.model import encoding_name_for_model  # noqa: PLC0415 - a table, no encoding loaded

        try:
            return encoding_name_for_model(model.rsplit("/", 1)[-1])
        except KeyError:
            return None

    def discover_models(self) -> list[str] | None:
        """For a config with a base URL: the models that server lists (``GET {base_url}/models``
        through the outbound policy, with httpx: web processes never import litellm), as
        litellm model strings (``openai/<id>``; ``ollama/<name>`` from an Ollama root's
        ``/api/tags``). None without a base URL: litellm's hosted families are not listed."""
        if not self.settings.base_url:
            return None
        listed = list_models(self.settings.base_url, self.settings.api_key, self.outbound)
        prefix = "ollama/" if listed.api == "ollama" else "openai/"
        return [prefix + model for model in listed.ids]

    def stream(self, model: str, messages: list[dict[str, Any]], *,
               options: ProviderOptions | None = None,
               tools: list[dict[str, Any]] | None = None,
               tool_choice: Any = None) -> Iterator[Event]:
        litellm = load_litellm()
        options = options or self.Options()
        # Never let litellm fall back to keys in the server's environment (OPENAI_API_KEY...):
        # a keyless local server gets a placeholder it ignores.
        key = self.settings.api_key or NO_KEY
        kwargs = options.model_dump(exclude={"timeout"}, exclude_none=True)
        if tools:
            kwargs["tools"] = [t if "type" in t else {"type": "function", "function": t} for t in tools]
            if tool_choice is not None:
                kwargs["tool_choice"] = tool_choice
        family = self._family(litellm, model)
        client = None
        try:
            client = self._client(family, options.timeout)
            if client is not None:
                kwargs["client"] = pinned_handler(client, options.timeout)
            chunks = litellm.completion(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True},
                api_key=key, api_base=self.settings.base_url, timeout=options.timeout,
                max_retries=0, num_retries=0, **kwargs)
            yield from self._events(litellm, model, chunks)
        except Exception as exc:
            refused = _refusal(exc)
            if refused is not None:
                raise ProviderAddressRefused(f"{model}: {refused.reason}") from None
            error = provider_error(litellm, exc, model, key)
            if error is None:  # our own ProviderError, or a bug: not litellm's to translate
                raise
            raise error from None
        finally:
            if client is not None:
                client.close()  # its pinned connections belong to this call only

    def _family(self, litellm: ModuleType, model: str) -> str:
        """litellm's provider family for ``model``; ProviderBadRequest for a family that would
        use the server's own credentials (unless the operator allows it for this global config)."""
        prefix = model.split("/", 1)[0]
        if "/" in model and prefix in known_families():
            family = prefix  # (asking litellm could already run the family's own sign-in)
        else:
            try:
                family = litellm.get_llm_provider(model=model, api_base=self.settings.base_url)[1]
            except Exception:  # litellm raises its BadRequestError for a model it cannot place
                raise ProviderBadRequest(f"{model}: litellm does not know this model's provider") from None
        if family in EXPLICIT_KEY_FAMILIES:
            return family
        if self.settings.is_global and family in ambient_families():
            return family
        raise ProviderBadRequest(
            f"{model}: litellm provider '{family}' is not allowed (it would use the server's own "
            "credentials); an admin can allow it for global configs")

    def _client(self, family: str, timeout: float) -> httpx.Client | None:
        """An httpx client whose connections the outbound policy pins, for the families litellm
        is given one; else None after checking the base URL (litellm connects itself)."""
        base_url = self.settings.base_url
        policy = self.outbound
        if family in PINNED_FAMILIES:
            return httpx.Client(transport=policy.httpx_transport(verify=tls_context()), timeout=timeout,
                                follow_redirects=False, verify=tls_context())
        if base_url:
            policy.check_url(base_url)
            host = httpx.URL(base_url).host
            if not policy.fixed_address(host) and not policy.is_trusted():
                raise OutboundRefused(host, f"litellm's '{family}' provider resolves the host name "
                                      "itself: use an address, or a host the server lists")
        return None

    def _events(self, litellm: ModuleType, model: str, chunks: Iterator[Any]) -> Iterator[Event]:
        calls = ToolCallAssembler()
        usage = None
        finish = "stop"
        for chunk in chunks:
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    yield TextDelta(delta.content)
                for fragment in delta.tool_calls or ():
                    function = fragment.function
                    calls.add(fragment.index, fragment.id, function and function.name,
                              function and function.arguments)
                finish = choice.finish_reason or finish
            usage = getattr(chunk, "usage", None) or usage
        yield from calls.calls(model)
        if usage is not None:
            cached = cached_tokens(usage)
            yield Usage(usage.prompt_tokens, usage.completion_tokens,
                        cost(litellm, model, usage.prompt_tokens, usage.completion_tokens, cached),
                        cached_tokens=cached)
        yield Finish(finish)


def pinned_handler(client: httpx.Client, timeout: float) -> Any:
    """litellm's ``HTTPHandler`` around ``client`` (no redirects: each hop would need a check)."""
    from litellm.llms.custom_httpx.http_handler import HTTPHandler  # noqa: PLC0415 - imported with litellm

    return HTTPHandler(client=client, timeout=timeout, follow_redirects=False)


def cached_tokens(usage: Any) -> int:
    """The prompt tokens the upstream served from its cache (``prompt_tokens_details``)."""
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None)
    return cached if isinstance(cached, int) and cached > 0 else 0


def cost(litellm: ModuleType, model: str, prompt_tokens: int, completion_tokens: int,
         cached: int = 0) -> float | None:
    """USD cost from litellm's bundled price map (cached prompt tokens at its cache-read price);
    None for models it does not know."""
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            cache_read_input_tokens=cached)
    except Exception:  # litellm raises a bare Exception for unmapped models
        return None
    return prompt_cost + completion_cost


def provider_error(litellm: ModuleType, exc: Exception, model: str, key: str | None) -> ProviderError | None:
    """The :class:`ProviderError` for a litellm (or transport) exception; None if it is neither.

    litellm's own messages may quote the key (``Incorrect API key provided: sk-...``): auth
    errors get a fixed message and every other message has the key replaced.
    """
    if isinstance(exc, litellm.Timeout):
        return ProviderTimeout(f"{model}: no answer in time", status=408)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(exc, litellm.APIConnectionError):
        if isinstance(exc, (litellm.APIConnectionError, httpx.TransportError)):
            return with_detail(ProviderUnavailable(f"{model}: connection failed"), type(exc).__name__)
        return None
    detail = redact_key(str(getattr(exc, "message", None) or exc), key)
    # The upstream's headers (``Retry-After``...): litellm's HTTP handler keeps them on the
    # exception, the OpenAI SDK on its response.
    headers = getattr(exc, "litellm_response_headers", None) or getattr(getattr(exc, "response", None), "headers", None)
    return error_for_status(model, status, detail, headers)


def _refusal(exc: BaseException) -> OutboundRefused | None:
    """The policy's refusal behind ``exc`` (litellm and the OpenAI SDK wrap it), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OutboundRefused):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


@hookimpl
def register_providers(register: Any) -> None:
    register(LiteLLMProvider)
