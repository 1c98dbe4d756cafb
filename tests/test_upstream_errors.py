"""An upstream's HTTP failure as a ProviderError: status mapping, Retry-After forms, and what a
viewer sees of the upstream's text (bestchat.providers.upstream_errors)."""

from __future__ import annotations

import httpx
import pytest

from bestchat.providers.base import (
    ProviderAuthError, ProviderBadRequest, ProviderRateLimited, ProviderTimeout, ProviderUnavailable,
)
from bestchat.providers.upstream_errors import (
    MAX_MESSAGE, error_for_status, message_for, retry_after, with_detail,
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
    assert "sk-live" not in str(error) and error.detail is None


def test_error_message_is_short_and_the_upstream_text_is_detail():
    error = error_for_status("example.com", 502, "internal service says: secret banner")
    assert error.message == "example.com: the provider failed (HTTP 502)"
    assert error.detail == "internal service says: secret banner"
    assert message_for(error, owner_admin=False) == error.message
    assert message_for(error, owner_admin=True) == (
        "example.com: the provider failed (HTTP 502): internal service says: secret banner")


def test_a_long_detail_is_shortened_and_so_is_what_the_admin_sees():
    error = with_detail(ProviderUnavailable("example.com: the provider failed (HTTP 502)"), "x" * 2000)
    assert error.detail == "x" * MAX_MESSAGE
    assert len(message_for(error, owner_admin=True)) == MAX_MESSAGE
    assert with_detail(ProviderUnavailable("m"), "").detail is None
