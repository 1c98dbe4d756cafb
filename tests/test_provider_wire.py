"""Shared helpers for HTTP providers: status mapping, Retry-After forms, key redaction,
tool-call assembly."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import httpx
import pytest

from bestchat.providers.base import (
    ProviderAuthError, ProviderBadRequest, ProviderError, ProviderRateLimited, ProviderTimeout,
    ProviderUnavailable,
)
from bestchat.providers.wire import (
    MIN_ECHO, REDACTED, ToolCallAssembler, error_for_status, message_for, redact, retry_after,
)


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "7"}, 7.0),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # a date in the past
    ({"retry-after": "soon"}, None),
    ({}, None),
])
def test_retry_after_header_forms(headers, seconds):
    assert retry_after(httpx.Headers(headers)) == seconds


@pytest.mark.parametrize("status, kind", [
    (401, ProviderAuthError), (403, ProviderAuthError), (429, ProviderRateLimited),
    (408, ProviderTimeout), (500, ProviderUnavailable), (503, ProviderUnavailable),
    (400, ProviderBadRequest), (404, ProviderBadRequest),
])
def test_status_maps_to_error_class(status, kind):
    error = error_for_status("example.com", status, "detail", httpx.Headers({"retry-after": "4"}))
    assert type(error) is kind and error.status == status
    assert error.retry_after == (4.0 if status == 429 else None)


def test_auth_errors_never_repeat_the_upstream_text():
    error = error_for_status("example.com", 401, "Incorrect API key provided: sk-live-123")
    assert "sk-live" not in str(error)


def test_redact_replaces_every_occurrence():
    assert redact("key sk-1 and sk-1", "sk-1") == f"key {REDACTED} and {REDACTED}"
    assert redact("nothing", None) == "nothing"


LIVE_KEY = "sk-live/Ab+cD3fGh1jK2lMn=Op"


@pytest.mark.parametrize("echo", [
    LIVE_KEY,
    LIVE_KEY.upper(),
    LIVE_KEY.lower(),
    quote(LIVE_KEY, safe=""),                    # URL-encoded
    quote(quote(LIVE_KEY, safe=""), safe=""),    # URL-encoded twice
    quote_plus(LIVE_KEY),
    base64.b64encode(LIVE_KEY.encode()).decode(),
    LIVE_KEY[:10] + "..." + LIVE_KEY[-8:],       # a shortened key: its head and tail
    LIVE_KEY[-8:],                               # its tail alone
    LIVE_KEY[5:17].upper(),                      # a slice from the middle, upper-cased
])
def test_redact_removes_encoded_and_partial_echoes_of_the_key(echo):
    text = redact(f"Incorrect API key provided: {echo}. See the docs.", LIVE_KEY)
    assert text.startswith("Incorrect API key provided: ") and text.endswith(". See the docs.")
    assert REDACTED in text
    for start in range(len(LIVE_KEY) - MIN_ECHO + 1):  # no run of 8 key characters is left
        assert LIVE_KEY[start:start + MIN_ECHO].lower() not in text.lower()


def test_redact_keeps_text_that_shares_only_short_runs_with_the_key():
    assert redact("sk-live is ok; no key here", LIVE_KEY) == "sk-live is ok; no key here"


def test_error_message_is_short_and_the_upstream_text_is_detail():
    error = error_for_status("example.com", 502, "internal service says: secret banner")
    assert error.message == "example.com: the provider failed (HTTP 502)"
    assert error.detail == "internal service says: secret banner"
    assert message_for(error, owner_admin=False) == error.message
    assert "secret banner" in message_for(error, owner_admin=True)


def test_tool_calls_are_assembled_from_fragments_in_index_order():
    calls = ToolCallAssembler()
    calls.add(1, "b", "second", '{"x"')
    calls.add(0, "a", "first", "{}")
    calls.add(1, None, None, ": 1}")
    assembled = calls.calls("model")
    assert [(c.id, c.name, c.arguments) for c in assembled] == [("a", "first", {}), ("b", "second", {"x": 1})]


def test_tool_call_arguments_must_be_an_object():
    calls = ToolCallAssembler()
    calls.add(0, "a", "f", "[1, 2]")
    with pytest.raises(ProviderError, match="not a JSON object"):
        calls.calls("model")
