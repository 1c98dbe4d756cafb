"""BestChat provider ``litellm``: any model litellm can call, by its litellm model string.

Model names are litellm's (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
``ollama/llama3.2`` ...); the configured key and base URL go to litellm as ``api_key`` and
``api_base``. Usage comes from the stream (``stream_options.include_usage``) and the cost from
litellm's bundled model price map.

litellm is heavy (hundreds of MB, seconds to import), so this module does not import it: the
first :meth:`LiteLLMProvider.stream` call does, which only happens in a worker. Everything stays
offline: the bundled price map is used instead of fetching one (``LITELLM_LOCAL_MODEL_COST_MAP``)
and litellm points tiktoken at its bundled encodings itself. No litellm retries run: failover
decides what to retry.
"""

from __future__ import annotations

import functools
import json
import os
from email.utils import parsedate_to_datetime
from time import time
from types import ModuleType
from typing import Any, Iterator, Mapping

import httpx

from bestchat.hookspecs import hookimpl
from bestchat.providers.base import (
    Event, Finish, Provider, ProviderAuthError, ProviderBadRequest, ProviderError, ProviderOptions,
    ProviderRateLimited, ProviderTimeout, ProviderUnavailable, TextDelta, ToolCall, Usage,
)

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOG", "ERROR")


@functools.cache
def load_litellm() -> ModuleType:
    """Import litellm once, quietly: no debug banners, no message logging in callbacks, and no
    per-chunk success logging (BestChat records usage itself; that logging more than doubles
    litellm's CPU per streamed chunk)."""
    import litellm  # noqa: PLC0415 - deliberately lazy, see the module docstring

    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    litellm.disable_streaming_logging = True
    return litellm


NO_KEY = "no-key"


class LiteLLMProvider(Provider):
    """Streams chat completions through ``litellm.completion``."""

    name = "litellm"
    label = "litellm (100+ providers)"
    supports_tools = True
    # A key, or a base URL for keyless local servers (ollama/...), is configured per user or
    # globally: never the server's own environment, which would hand it to every user.
    needs_key = True
    default_models = ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest")

    def stream(self, model: str, messages: list[dict[str, Any]], *,
               options: ProviderOptions | None = None,
               tools: list[dict[str, Any]] | None = None) -> Iterator[Event]:
        litellm = load_litellm()
        options = options or self.Options()
        # Never let litellm fall back to keys in the server's environment (OPENAI_API_KEY...):
        # a keyless local server gets a placeholder it ignores.
        key = self.settings.api_key or NO_KEY
        kwargs = options.model_dump(exclude={"timeout"}, exclude_none=True)
        if tools:
            kwargs["tools"] = [t if "type" in t else {"type": "function", "function": t} for t in tools]
        try:
            chunks = litellm.completion(
                model=model, messages=messages, stream=True, stream_options={"include_usage": True},
                api_key=key, api_base=self.settings.base_url, timeout=options.timeout,
                max_retries=0, num_retries=0, **kwargs)
            yield from self._events(litellm, model, chunks)
        except Exception as exc:
            error = provider_error(litellm, exc, model, key)
            if error is None:  # our own ProviderError, or a bug: not litellm's to translate
                raise
            raise error from None

    def _events(self, litellm: ModuleType, model: str, chunks: Iterator[Any]) -> Iterator[Event]:
        calls: dict[int, dict[str, str]] = {}
        usage = None
        finish = "stop"
        for chunk in chunks:
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    yield TextDelta(delta.content)
                for fragment in delta.tool_calls or ():
                    _merge_tool_call(calls.setdefault(fragment.index or 0, {}), fragment)
                finish = choice.finish_reason or finish
            usage = getattr(chunk, "usage", None) or usage
        for index in sorted(calls):
            yield _tool_call(calls[index], model)
        if usage is not None:
            yield Usage(usage.prompt_tokens, usage.completion_tokens,
                        cost(litellm, model, usage.prompt_tokens, usage.completion_tokens))
        yield Finish(finish)


def cost(litellm: ModuleType, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """USD cost from litellm's bundled price map; None for models it does not know."""
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
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
    if not isinstance(status, int):
        if isinstance(exc, (litellm.APIConnectionError, httpx.TransportError)):
            return ProviderUnavailable(f"{model}: connection failed ({type(exc).__name__})")
        return None
    if status in (401, 403):
        return ProviderAuthError(f"{model}: the API key was rejected (HTTP {status})", status=status)
    detail = str(getattr(exc, "message", None) or exc)
    message = f"{model}: HTTP {status}: {detail.replace(key, '***') if key else detail}"[:500]
    if status == 429:
        response = getattr(exc, "response", None)
        return ProviderRateLimited(message, status=status, retry_after=retry_after(getattr(response, "headers", {})))
    if status == 408:
        return ProviderTimeout(message, status=status)
    if status >= 500:
        return ProviderUnavailable(message, status=status)
    return ProviderBadRequest(message, status=status)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def _merge_tool_call(call: dict[str, str], fragment: Any) -> None:
    if fragment.id:
        call["id"] = fragment.id
    function = fragment.function
    if function is not None:
        if function.name:
            call["name"] = call.get("name", "") + function.name
        call["arguments"] = call.get("arguments", "") + (function.arguments or "")


def _tool_call(call: dict[str, str], model: str) -> ToolCall:
    name = call.get("name", "")
    try:
        arguments = json.loads(call.get("arguments") or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ProviderError(f"{model}: the model called tool {name!r} with arguments that are not a JSON object")
    return ToolCall(id=call.get("id", ""), name=name, arguments=arguments)


@hookimpl
def register_providers(register: Any) -> None:
    register(LiteLLMProvider)
