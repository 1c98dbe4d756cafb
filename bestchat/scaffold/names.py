"""The names of a new plugin, from the one name given to ``bestchat plugin new``.

The name is a distribution name, normalized as PEP 503 does (lower case, each run of ``-``,
``_`` and ``.`` a single ``-``) and prefixed with ``bestchat-`` when it lacks it: ``weather``,
``bestchat_weather`` and ``BestChat-Weather`` all give ``bestchat-weather``. What follows the
prefix must start with a letter and hold only letters, digits and single hyphens, so that its
underscored form is a Python identifier: the entry point's name and the name the plugin
registers its provider, tool or strategy under.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from bestchat.plugins import normalize_name

PREFIX = "bestchat-"
# A distribution name as PEP 508 allows it.
DISTRIBUTION_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
# What follows the prefix, once normalized.
SHORT_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
# Registered names (tools, providers) are at most 64 characters; the prefix and module add to it.
SHORT_MAX_CHARS = 40
# Names a tool plugin's module defines besides its function (a tool's function is named ``ident``).
TAKEN = frozenset({"hookimpl", "register_tools", "register_providers", "register_context_strategies"})


class InvalidName(ValueError):
    """The name cannot name a plugin; the message says why and what would do."""


@dataclass(frozen=True)
class PluginNames:
    """``distribution`` (``bestchat-word-count``), ``module`` (``bestchat_word_count``),
    ``ident`` (``word_count``: the entry point's name and what the plugin registers) and
    ``camel`` (``WordCount``: the start of its class names)."""

    distribution: str
    module: str
    ident: str
    camel: str


def plugin_names(name: str) -> PluginNames:
    """The names of the plugin ``name``; :class:`InvalidName` when it cannot be one."""
    name = name.strip()
    if not DISTRIBUTION_RE.match(name):
        raise InvalidName(f"{name!r} is not a distribution name: use letters, digits and hyphens, "
                          "e.g. bestchat-weather")
    distribution = normalize_name(name)
    if distribution == PREFIX.rstrip("-"):
        raise InvalidName(f"{name!r} names BestChat itself: add what the plugin is, e.g. bestchat-weather")
    if not distribution.startswith(PREFIX):
        distribution = PREFIX + distribution
    short = distribution[len(PREFIX):]
    if not SHORT_RE.match(short):
        raise InvalidName(f"{distribution!r}: what follows 'bestchat-' must start with a letter and hold only "
                          "letters, digits and hyphens, e.g. bestchat-weather")
    if len(short) > SHORT_MAX_CHARS:
        raise InvalidName(f"{distribution!r} is too long: at most {SHORT_MAX_CHARS} characters after 'bestchat-'")
    ident = short.replace("-", "_")
    if keyword.iskeyword(ident):
        raise InvalidName(f"{distribution!r}: {ident!r} is a Python keyword and cannot name the plugin's "
                          "function; choose another name")
    if ident in TAKEN:
        raise InvalidName(f"{distribution!r}: {ident!r} is a name of the plugin API; choose another name")
    return PluginNames(distribution=distribution, module=distribution.replace("-", "_"), ident=ident,
                       camel="".join(part.capitalize() for part in short.split("-")))
