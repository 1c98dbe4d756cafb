"""Text that both databases can store, decided in one place.

PostgreSQL refuses NUL (``\\x00``) in text and JSON columns, and neither database driver can
encode a lone UTF-16 surrogate (``\\ud800``-``\\udfff``) as UTF-8. A Python string holds both
without complaint: a JSON ``"\\u0000"`` or ``"\\ud800"`` escape decodes to them, and a model
can emit them. Text from users is refused when it holds one (:func:`is_storable`, checked
where requests are parsed); text from providers is repaired (:func:`storable`) before it is
published or saved, so what clients stream is what is stored. :data:`VALUE_REFUSED` names
the errors a save raises when a value got through anyway, for the paths that must then save
without it.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import DataError

REPLACEMENT = "\ufffd"

# What a statement raises when the database refuses one of its values (NUL, a number out of
# range: DataError) or the driver cannot encode it (a lone surrogate: UnicodeEncodeError).
VALUE_REFUSED = (DataError, UnicodeEncodeError)

# NUL and every surrogate code point (a valid pair is one astral character in a Python string).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable(text: str) -> bool:
    """True if ``text`` holds no NUL and no surrogate code point (C-speed checks: a search
    for NUL, then, unless the text is ASCII, UTF-8 encoding, which refuses surrogates)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(text: str) -> str:
    """``text`` with every NUL and surrogate code point replaced by U+FFFD."""
    if is_storable(text):
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)
