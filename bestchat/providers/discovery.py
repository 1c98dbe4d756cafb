"""Listing the models an OpenAI-compatible server serves, for providers'
:meth:`~bestchat.providers.base.Provider.discover_models`.

``GET {base_url}/models`` answers ``{"data": [{"id": ...}, ...]}`` on OpenAI, Ollama's ``/v1``,
vLLM, LM Studio, llama.cpp and LiteLLM proxies. An Ollama root URL (no ``/v1``) answers 404
there; its native ``GET /api/tags`` (``{"models": [{"name": ...}]}``) is then asked instead.

The request goes through the caller's outbound policy (resolved, checked and pinned; through a
proxy only checked, since the proxy resolves the name itself), follows no redirect, waits at
most ``timeout`` seconds and reads at most ``max_bytes`` of the answer. Failures are
:class:`ProviderError` subclasses whose text never contains the key. This runs in web
processes (a config's owner asks for it): it uses httpx, never litellm.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from bestchat.providers.base import (
    MAX_DISCOVERED_MODELS, ProviderAddressRefused, ProviderError, ProviderTimeout, ProviderUnavailable,
)
from bestchat.providers.upstream_errors import error_for_status, with_detail
from bestchat.redaction import redact_key
from bestchat.security.outbound import OutboundRefused, Policy

TIMEOUT = 10.0
MAX_BYTES = 2 * 1024 * 1024
MAX_ID_LENGTH = 200


class ModelListRefused(ProviderError):
    """The upstream answered, but not with a usable model list (too large, not JSON, another
    shape)."""

    code = "model_list_refused"


@dataclass(frozen=True)
class ModelList:
    """The ids listed, and the API that listed them: ``"openai"`` (``/models``) or
    ``"ollama"`` (Ollama's native ``/api/tags``)."""

    ids: list[str]
    api: str = "openai"


def list_models(base_url: str, key: str | None, policy: Policy, *, timeout: float = TIMEOUT,
                max_bytes: int = MAX_BYTES, max_models: int = MAX_DISCOVERED_MODELS) -> ModelList:
    """The models ``base_url`` lists (the key, when given, as a Bearer token)."""
    host = urlsplit(base_url).netloc or base_url
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    root = base_url.rstrip("/")
    api = "openai"
    try:
        with _client(root, policy, timeout) as client:
            status, answer_headers, body = _get(client, root + "/models", headers, max_bytes, host)
            if status == 404 and not urlsplit(root).path.rstrip("/").endswith("/v1"):
                api = "ollama"
                status, answer_headers, body = _get(client, root + "/api/tags", headers, max_bytes, host)
    except OutboundRefused as refused:
        raise ProviderAddressRefused(f"{host}: {refused.reason}") from None
    except httpx.TimeoutException:
        raise ProviderTimeout(f"{host}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as error:
        raise with_detail(ProviderUnavailable(f"{host}: connection failed"), type(error).__name__) from None
    if status >= 300:  # redirects are not followed: each hop would need a check
        raise error_for_status(host, status, _error_text(body, key), answer_headers)
    return ModelList(parse_model_ids(body, host, max_models), api)


def parse_model_ids(body: bytes, host: str, max_models: int = MAX_DISCOVERED_MODELS) -> list[str]:
    """The model ids of an OpenAI (``data[].id``) or Ollama (``models[].name``) list, in order,
    without duplicates, at most ``max_models``; entries without a usable id are skipped."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise ModelListRefused(f"{host}: the model list is not JSON") from None
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        entries, field = payload["data"], "id"
    elif isinstance(payload, dict) and isinstance(payload.get("models"), list):
        entries, field = payload["models"], "name"
    else:
        raise ModelListRefused(f"{host}: the answer is not a model list")
    ids: dict[str, None] = {}
    for entry in entries:
        value = entry.get(field) if isinstance(entry, dict) else None
        if isinstance(value, str) and value.strip() and len(value) <= MAX_ID_LENGTH:
            ids[value.strip()] = None
            if len(ids) >= max_models:
                break
    return list(ids)


def _client(base_url: str, policy: Policy, timeout: float) -> httpx.Client:
    """A one-use client: pinned through ``policy``, or through the environment's proxy."""
    httpx_timeout = httpx.Timeout(timeout)
    if proxied(base_url):
        policy.check_url(base_url)  # (the proxy resolves again: not pinned)
        return httpx.Client(timeout=httpx_timeout, follow_redirects=False, trust_env=True)
    return httpx.Client(timeout=httpx_timeout, follow_redirects=False, trust_env=False,
                        transport=policy.httpx_transport())


def proxied(base_url: str) -> bool:
    """Whether the proxy environment variables (``HTTPS_PROXY``, ``NO_PROXY``...) apply to
    ``base_url``."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _get(client: httpx.Client, url: str, headers: dict[str, str], max_bytes: int,
         host: str) -> tuple[int, httpx.Headers, bytes]:
    """GET ``url``: its status, headers and body, refused when the body exceeds ``max_bytes``."""
    with client.stream("GET", url, headers=headers) as response:
        length = response.headers.get("content-length")
        if response.status_code < 300 and length and length.isdigit() and int(length) > max_bytes:
            raise _too_large(host, max_bytes)
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                if response.status_code >= 300:  # an error's text: its head is enough
                    break
                raise _too_large(host, max_bytes)
        return response.status_code, response.headers, bytes(body[:max_bytes])


def _too_large(host: str, max_bytes: int) -> ModelListRefused:
    return ModelListRefused(f"{host}: the model list is larger than {max_bytes // 1024} KiB")


def _error_text(body: bytes, key: str | None) -> str:
    """The upstream's error message (key-free) from an error answer's body."""
    text = body[:4096].decode("utf-8", "replace")
    try:
        payload: Any = json.loads(text)
    except ValueError:
        return redact_key(text, key)
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return redact_key(str(message if message else payload), key)
