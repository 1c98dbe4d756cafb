"""Taking credentials out of text before it is shown or logged, behind one marker.

- :func:`redact_key` removes a provider's API key from upstream text (error messages and
  details), however the upstream echoes it: as is, encoded, in another letter case or in part.
  Every provider and the registry's last check use it.
- :func:`redact_url_credentials` removes the values of credential parameters (``token``,
  ``ticket``...) from URLs and query strings, for the access log.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import quote, quote_plus

# What stands in for a removed credential, everywhere.
REDACTED = "[redacted]"
# The shortest run of a key's characters that counts as an echo of it. Shorter runs say
# little about the key (``key_last4`` shows four on purpose) and match ordinary words.
MIN_ECHO = 8
# A credential parameter's value in a URL or query string (any case, up to the next & # space).
_SECRET_PARAMETER = re.compile(r"((?:^|[?&;])(?:token|ticket|access_token|api_key)=)[^&#\s]*", re.IGNORECASE)


def redact_key(text: str, key: str | None) -> str:
    """``text`` with ``key`` replaced by :data:`REDACTED` wherever it is echoed: as is,
    URL-encoded (once or twice), base64-encoded, in any letter case, and in part (any run of
    :data:`MIN_ECHO` or more of its characters, such as a ``...`` shortened key's head and tail)."""
    if not key:
        return text
    for form in _encodings(key):
        text = re.sub(re.escape(form), REDACTED, text, flags=re.IGNORECASE)
    if len(key) < MIN_ECHO:
        return text
    return _redact_fragments(text, key.lower())


def redact_url_credentials(text: str | None) -> str | None:
    """``text`` with the value of every credential parameter (``token``, ``ticket``,
    ``access_token``, ``api_key``) replaced by :data:`REDACTED`."""
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + REDACTED, text) if text else text


def _encodings(key: str) -> list[str]:
    """The spellings of ``key`` an upstream error may echo, longest first."""
    once = quote(key, safe="")
    forms = {key, once, quote(once, safe=""), quote_plus(key),
             base64.b64encode(key.encode()).decode().rstrip("=")}
    return sorted(forms, key=len, reverse=True)


def _redact_fragments(text: str, key: str) -> str:
    """Replace every run of ``MIN_ECHO``+ characters of ``text`` that occurs in ``key``
    (compared without letter case); runs are taken longest-first from each position."""
    lower = text.lower()
    out: list[str] = []
    i = 0
    while i < len(text):
        end = i + MIN_ECHO
        if end <= len(text) and lower[i:end] in key:
            while end < len(text) and lower[i:end + 1] in key:
                end += 1
            out.append(REDACTED)
            i = end
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
