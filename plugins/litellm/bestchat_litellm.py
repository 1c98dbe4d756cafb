"""BestChat provider ``litellm``: any model litellm can call, by its litellm model string.

Model names are litellm's (``openai/gpt-4o-mini``, ``anthropic/claude-3-5-haiku-latest``,
``ollama/llama3.2`` ...); the configured key and base URL go to litellm as ``api_key`` and
``api_base``. Usage comes from the stream (``stream_options.include_usage``) and the cost from
litellm's bundled model price map.

litellm is heavy (hundreds of MB, seconds to import), so this module does not import it: the
first :meth:`LiteLLMProvider.stream` call does, which only happens in a worker, and then
exempts litellm's objects from the garbage collector's full passes (``bestchat.heap``). Everything stays
offline: the bundled price map is used instead of fetching one (``LITELLM_LOCAL_MODEL_COST_MAP``)
and litellm points tiktoken at its bundled encodings itself. No litellm retries run: failover
decides what to retry.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any, Iterator

import httpx

from bestchat.heap import freeze_imported_objects
from bestchat.hookspecs import hookimpl
from bestchat.providers.base import (
    Event, Finish, Provider, ProviderError, ProviderOptions, ProviderTimeout, ProviderUnavailable,
    TextDelta, Usage,
)
from bestchat.providers.wire import ToolCallAssembler, error_for_status, redact

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
    freeze_imported_objects()  # (its ~340,000 objects: a 210 ms pass each full collection)
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
    detail = redact(str(getattr(exc, "message", None) or exc), key)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return error_for_status(model, status, detail, headers)


@hookimpl
def register_providers(register: Any) -> None:
    register(LiteLLMProvider)
