"""Credentials taken out of text behind one marker: a provider key echoed by an upstream
(redact_key) and credential parameters in URLs (redact_url_credentials)."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from bestchat.redaction import MIN_ECHO, REDACTED, redact_key, redact_url_credentials


def test_the_marker():
    assert REDACTED == "[redacted]"


def test_redact_key_replaces_every_occurrence():
    assert redact_key("key sk-1 and sk-1", "sk-1") == f"key {REDACTED} and {REDACTED}"
    assert redact_key("nothing", None) == "nothing"
    assert redact_key("nothing", "") == "nothing"


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
def test_redact_key_removes_encoded_and_partial_echoes_of_the_key(echo):
    text = redact_key(f"Incorrect API key provided: {echo}. See the docs.", LIVE_KEY)
    assert text.startswith("Incorrect API key provided: ") and text.endswith(". See the docs.")
    assert REDACTED in text
    for start in range(len(LIVE_KEY) - MIN_ECHO + 1):  # no run of MIN_ECHO key characters is left
        assert LIVE_KEY[start:start + MIN_ECHO].lower() not in text.lower()


def test_redact_key_keeps_text_that_shares_only_short_runs_with_the_key():
    assert redact_key("sk-live is ok; no key here", LIVE_KEY) == "sk-live is ok; no key here"


@pytest.mark.parametrize("text, expected", [
    ("GET /ws?token=bc_SECRET&x=1 HTTP/1.1", f"GET /ws?token={REDACTED}&x=1 HTTP/1.1"),
    ("TICKET=wst_SECRET", f"TICKET={REDACTED}"),
    ("http://h/?access_token=SECRET#frag", f"http://h/?access_token={REDACTED}#frag"),
    ("a=1;api_key=SECRET&b=2", f"a=1;api_key={REDACTED}&b=2"),
    ("/path?mytoken=keep&tokens=keep", "/path?mytoken=keep&tokens=keep"),
])
def test_redact_url_credentials_replaces_credential_parameter_values(text, expected):
    assert redact_url_credentials(text) == expected


@pytest.mark.parametrize("empty", [None, ""])
def test_redact_url_credentials_passes_empty_values_through(empty):
    assert redact_url_credentials(empty) == empty
