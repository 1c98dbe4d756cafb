"""BestChat provider ``openai``: any OpenAI-compatible chat completions API over raw HTTP.

Works with OpenAI, Ollama, vLLM, LM Studio, OpenRouter, Groq, Together, DeepSeek and anything
else that serves ``POST {base_url}/chat/completions`` with SSE streaming. The hot path is
:mod:`bestchat_openai_http` (keep-alive connections pooled per base URL, read with the standard
library at half httpx's CPU per token) plus a line-based SSE parser; the key is sent per
request, so users of the same API share warm connections. When a proxy environment variable
applies to the base URL the request goes through httpx instead, which honours it.

Models: :meth:`OpenAIProvider.discover_models` lists the server's models with ``GET
{base_url}/models`` (Ollama, vLLM, LM Studio, llama.cpp and LiteLLM proxies answer it too).

Keys: the official API (no ``base_url`` configured) needs one; with a ``base_url`` the key is
optional, so local servers such as Ollama (``http://localhost:11434/v1``) work keyless. The key
never appears in an error message.

Addresses: every connection goes through the config's outbound policy
(``bestchat.security.outbound``): the host is resolved and checked, and the connection is made
to the checked address (TLS still verifies the host name). Redirects are not followed (a 3xx is
an error). Through a proxy the proxy resolves the name: the address is checked first, but it
cannot be pinned. An upstream's error text goes to the error's ``detail`` (for the owning
admin); its message stays short.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any, Iterable, Iterator, Mapping
from urllib.parse import urlsplit

import httpx
from bestchat_openai_http import ConnectFailed, iter_lines, pool_for

from bestchat.plugin_api import (
    Event, Finish, OutboundRefused, Provider, ProviderAddressRefused, ProviderAuthError, ProviderError,
    ProviderOptions, ProviderTimeout, ProviderUnavailable, TextDelta, ToolCallAssembler, Usage, error_for_status,
    hookimpl, list_models, proxied, redact_key, with_detail,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
POOL_LIMITS = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=30)
CONNECT_TIMEOUT = 10.0
# The most of an error answer's body that is read and examined (the detail keeps 500 chars).
MAX_ERROR_BODY = 4096

_clients: dict[str, httpx.Client] = {}
_clients_lock = threading.Lock()


def client_for(base_url: str) -> httpx.Client:
    """The process-wide pooled client for ``base_url`` (created on first use)."""
    with _clients_lock:
        client = _clients.get(base_url)
        if client is None:
            client = _clients[base_url] = httpx.Client(base_url=base_url.rstrip("/") + "/", limits=POOL_LIMITS)
        return client


class OpenAIProvider(Provider):
    """Chat completions against an OpenAI-compatible ``base_url`` (default: api.openai.com)."""

    name = "openai"
    label = "OpenAI-compatible API"
    supports_tools = True
    needs_key = True
    default_models = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")

    def encoding(self, model: str) -> str | None:
        """tiktoken's encoding for an OpenAI model name (None for others: the server's default)."""
        from tiktoken.model import encoding_name_for_model  # noqa: PLC0415 - a table, no encoding loaded

        try:
            return encoding_name_for_model(model.rsplit("/", 1)[-1])
        except KeyError:
            return None

    def discover_models(self) -> list[str] | None:
        """The ids ``GET {base_url}/models`` lists (the chat URL's sibling), with the key when
        there is one, through the config's outbound policy (:mod:`bestchat.providers.discovery`)."""
        base_url = self.settings.base_url or DEFAULT_BASE_URL
        if not self.settings.api_key and not self.settings.base_url:
            raise ProviderAuthError(f"{urlsplit(base_url).netloc}: no API key configured")
        return list_models(base_url, self.settings.api_key, self.outbound).ids

    def stream(self, model: str, messages: list[dict[str, Any]], *,
               options: ProviderOptions | None = None,
               tools: list[dict[str, Any]] | None = None,
               tool_choice: Any = None) -> Iterator[Event]:
        options = options or self.Options()
        base_url = self.settings.base_url or DEFAULT_BASE_URL
        key = self.settings.api_key
        host = urlsplit(base_url).netloc or base_url
        if not key and not self.settings.base_url:
            raise ProviderAuthError(f"{host}: no API key configured")
        body = request_body(model, messages, options, tools, tool_choice)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        connect_timeout = min(CONNECT_TIMEOUT, options.timeout)
        try:
            if proxied(base_url):
                self.outbound.check_url(base_url)  # (the proxy resolves again: not pinned)
                yield from _stream_httpx(base_url, host, key, body, headers, options.timeout, connect_timeout)
                return
            yield from self._stream_pooled(base_url, host, key, body, headers, options.timeout, connect_timeout)
        except OutboundRefused as refused:
            raise ProviderAddressRefused(f"{host}: {refused.reason}") from None

    def _stream_pooled(self, base_url: str, host: str, key: str | None, body: dict[str, Any],
                       headers: dict[str, str], read_timeout: float, connect_timeout: float) -> Iterator[Event]:
        data = json.dumps(body).encode()
        headers.update({"Content-Type": "application/json", "Accept": "text/event-stream"})
        try:
            with pool_for(base_url).post("chat/completions", data, headers, connect_timeout=connect_timeout,
                                         read_timeout=read_timeout, policy=self.outbound) as response:
                if response.status >= 300:  # redirects are not followed: each hop would need a check
                    raise status_error(host, response.status, response.read(MAX_ERROR_BODY),
                                       {k.lower(): v for k, v in response.headers.items()}, key)
                yield from parse_stream(iter_lines(response), host, key)
                response.read()  # the end of the body after [DONE]: the connection can be reused
        except ConnectFailed as exc:
            raise with_detail(ProviderUnavailable(f"{host}: connection failed"), str(exc)) from None
        except TimeoutError:
            raise ProviderTimeout(f"{host}: no answer within {read_timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise with_detail(ProviderUnavailable(f"{host}: connection failed"), type(exc).__name__) from None


def _stream_httpx(base_url: str, host: str, key: str | None, body: dict[str, Any], headers: dict[str, str],
                  read_timeout: float, connect_timeout: float) -> Iterator[Event]:
    """The same request through httpx (used when a proxy applies: httpx honours the proxy
    environment variables)."""
    timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
    try:
        with client_for(base_url).stream("POST", "chat/completions", json=body, headers=headers,
                                         timeout=timeout) as response:
            if response.status_code >= 300:  # redirects are not followed (httpx's default)
                raise status_error(host, response.status_code, _head(response.iter_bytes()),
                                   response.headers, key)
            yield from parse_stream(response.iter_lines(), host, key)
    except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout):
        raise ProviderTimeout(f"{host}: no answer within {read_timeout:g} s") from None
    except httpx.TransportError as exc:
        raise with_detail(ProviderUnavailable(f"{host}: connection failed"), type(exc).__name__) from None


def _head(chunks: Iterable[bytes]) -> bytes:
    """The first ``MAX_ERROR_BODY`` bytes of a body."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= MAX_ERROR_BODY:
            break
    return head[:MAX_ERROR_BODY]


def request_body(model: str, messages: list[dict[str, Any]], options: ProviderOptions,
                 tools: list[dict[str, Any]] | None, tool_choice: Any = None) -> dict[str, Any]:
    """The JSON of a streaming chat completion request with usage reporting on; ``tool_choice``
    only with tools."""
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}}
    body.update(options.model_dump(exclude={"timeout"}, exclude_none=True))
    if tools:
        body["tools"] = [t if "type" in t else {"type": "function", "function": t} for t in tools]
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
    return body


def parse_stream(lines: Iterable[str], host: str, key: str | None) -> Iterator[Event]:
    """Turn SSE lines of chat completion chunks into events.

    Text is yielded as it arrives; tool calls (streamed as fragments keyed by ``index``), usage
    and the finish reason are yielded once the stream is complete.
    """
    calls = ToolCallAssembler()
    usage: Usage | None = None
    finish: str | None = None
    done = False
    for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, "event:" lines
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            raise ProviderUnavailable(f"{host}: malformed chunk in the stream") from None
        if "error" in chunk:
            raise with_detail(ProviderUnavailable(f"{host}: the provider reported an error in the stream"),
                              _error_message(chunk, key))
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield TextDelta(delta["content"])
            for fragment in delta.get("tool_calls") or ():
                function = fragment.get("function") or {}
                calls.add(fragment.get("index"), fragment.get("id"), function.get("name"), function.get("arguments"))
            finish = choice.get("finish_reason") or finish
        if chunk.get("usage"):
            usage = usage_of(chunk["usage"])
    if not done and finish is None:
        raise ProviderUnavailable(f"{host}: the stream ended before the answer was complete")
    yield from calls.calls(host)
    if usage is not None:
        yield usage
    yield Finish(finish or "stop")


def usage_of(reported: dict[str, Any]) -> Usage:
    """The chunk's ``usage``, with the prompt tokens served from the upstream's cache
    (``prompt_tokens_details.cached_tokens``, when it says)."""
    details = reported.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(reported.get("prompt_tokens") or 0, reported.get("completion_tokens") or 0,
                 cached_tokens=cached if isinstance(cached, int) and cached > 0 else 0)


def status_error(host: str, status: int, content: bytes, headers: Mapping[str, str],
                 key: str | None) -> ProviderError:
    """The :class:`ProviderError` for an HTTP error response with body ``content``."""
    text = content.decode("utf-8", "replace")
    try:
        detail = _error_message(json.loads(text), key)
    except ValueError:
        detail = redact_key(text, key)
    return error_for_status(host, status, detail, headers)


def _error_message(payload: Any, key: str | None) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return redact_key(str(message if message else payload), key)


@hookimpl
def register_providers(register: Any) -> None:
    register(OpenAIProvider)
