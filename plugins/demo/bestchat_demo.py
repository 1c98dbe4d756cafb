"""BestChat's offline demo provider: model ``demo/demo`` answers every message with a friendly,
deterministic reply built from the last user message, streamed word by word. It needs no key
and no network, so a fresh install can chat at once and tests get exact streams.

"Tokens" here are words: the reply is split into word-sized deltas (each with the whitespace
before it), and usage counts words. It is free: its price is $0 (``price``).

Tool mode, for trying tools offline: when tools are offered and the last user message contains
``[[tool_name {json arguments}]]`` (for instance ``[[calculator {"expression": "6*7"}]]``), the
model calls each such tool that is offered, in order; once the results are back it answers
``Tool results: <tool>: <result>; ...``.

Its options are bounded so that no conversation can make one answer last long: at least
``MIN_TOKENS_PER_SECOND`` words per second (or 0, as fast as possible), and at most
``QUOTE_MAX_WORDS`` words of the user's message quoted; so a reply takes minutes at most.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Iterator

from pydantic import Field, field_validator

from bestchat.plugin_api import (
    Event, Finish, Price, Provider, ProviderOptions, TextDelta, ToolCall, Usage, hookimpl,
)

WORD_RE = re.compile(r"\s*\S+")
# A file the server put into a message's text: <file name="..." ...>text</file>.
FILE_RE = re.compile(r'<file name="([^"]*)"[^>]*>\n?(.*?)\n?</file>', re.DOTALL)
# A tool call written in a user message: [[name {"json": "arguments"}]] (the object optional).
CALL_RE = re.compile(r"\[\[([A-Za-z0-9_-]{1,64})\s*(\{.*?\})?\s*\]\]", re.DOTALL)
# The slowest pace a conversation may ask for (words per second), and the most words of the
# user's message the reply quotes: together they keep one reply to about 17 minutes at worst.
MIN_TOKENS_PER_SECOND = 1
QUOTE_MAX_WORDS = 1000


class DemoOptions(ProviderOptions):
    tokens_per_second: float = Field(
        50, ge=0, le=10_000,
        description=f"Streaming speed in words per second, {MIN_TOKENS_PER_SECOND} to 10000; "
                    "0 = as fast as possible",
    )

    @field_validator("tokens_per_second")
    @classmethod
    def _not_too_slow(cls, value: float) -> float:
        if 0 < value < MIN_TOKENS_PER_SECOND:
            raise ValueError(f"must be 0 (as fast as possible) or at least {MIN_TOKENS_PER_SECOND}")
        return value


class DemoProvider(Provider):
    """Streams a reply that quotes the last user message."""

    name = "demo"
    label = "Demo (offline)"
    needs_key = False
    supports_tools = True
    supports_vision = True
    default_models = ("demo",)
    Options = DemoOptions

    def price(self, model: str) -> Price:
        """Free: it runs offline, in the server."""
        return Price(0, 0, 0)

    def stream(self, model: str, messages: list[dict[str, Any]], *,
               options: ProviderOptions | None = None,
               tools: list[dict[str, Any]] | None = None) -> Iterator[Event]:
        settings = DemoOptions(**(options.model_dump() if options else {}))
        calls = tool_calls_in(messages, tools) if tools else []
        if calls:
            yield TextDelta(" ".join(f"Calling {call.name}." for call in calls))
            yield from calls
            yield Usage(prompt_tokens=len(messages), completion_tokens=len(calls), cost=0.0)
            yield Finish("tool_calls")
            return
        summarizing = asks_for_summary(messages)
        words = WORD_RE.findall(summary_of(messages) if summarizing else reply_to(messages))
        if settings.max_tokens is not None and len(words) > settings.max_tokens:
            words, reason = words[: settings.max_tokens], "length"
        else:
            reason = "stop"
        # (a summary is read by the server, not watched as it streams: no pacing)
        delay = 1 / settings.tokens_per_second if settings.tokens_per_second and not summarizing else 0
        for index, word in enumerate(words):
            if delay and index:
                time.sleep(delay)
            yield TextDelta(word)
        prompt_words = sum(len(WORD_RE.findall(text_of(m.get("content")))) for m in messages)
        yield Usage(prompt_tokens=prompt_words, completion_tokens=len(words), cost=0.0)
        yield Finish(reason)


def tool_calls_in(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[ToolCall]:
    """The calls the last user message writes out, of offered tools, when no result came yet."""
    if not messages or messages[-1].get("role") != "user":
        return []
    offered = {(t.get("function") or t).get("name") for t in tools}
    calls = []
    for index, (name, arguments) in enumerate(CALL_RE.findall(text_of(messages[-1].get("content")))):
        try:
            parsed = json.loads(arguments) if arguments else {}
        except ValueError:
            continue
        if name in offered and isinstance(parsed, dict):
            calls.append(ToolCall(id=f"call_demo_{index}", name=name, arguments=parsed))
    return calls


def tool_results(messages: list[dict[str, Any]]) -> str | None:
    """``Tool results: ...`` when the conversation ends with tool results, else None."""
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(message)
    if not results:
        return None
    names = {call.get("id"): (call.get("function") or {}).get("name")
             for message in messages if message.get("role") == "assistant"
             for call in message.get("tool_calls") or ()}
    return "Tool results: " + "; ".join(f"{names.get(m.get('tool_call_id'), 'tool')}: {text_of(m.get('content'))}"
                                        for m in reversed(results))


def asks_for_summary(messages: list[dict[str, Any]]) -> bool:
    """Whether the request asks for a summary: its first message is a system message that says
    so (as the server's summarize strategy does)."""
    first = messages[0] if messages else {}
    return first.get("role") == "system" and "summary" in text_of(first.get("content")).lower()


def summary_of(messages: list[dict[str, Any]]) -> str:
    """The demo's summary: the first words of each line of the transcript it is given."""
    transcript = text_of(messages[-1].get("content")) if messages else ""
    lines = [line.strip() for line in transcript.splitlines() if line.strip()]
    return "Summary: " + " / ".join(" ".join(line.split()[:8]) for line in lines[:40])


def reply_to(messages: list[dict[str, Any]]) -> str:
    """The demo's answer to a conversation: the results of the tools it called, else a
    greeting that quotes the last user message."""
    results = tool_results(messages)
    if results is not None:
        return results
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    said = FILE_RE.sub("", text_of(last)).strip()
    attached = attachments_of(last)
    words = said.split()
    said = " ".join(words[:QUOTE_MAX_WORDS]) + (" …" if len(words) > QUOTE_MAX_WORDS else "")
    seen = f" I received {', '.join(attached)}." if attached else ""
    if not said:
        return "Hello! I am the offline demo model." + (seen or " Say something and I will echo it back.")
    return (f'Hello! I am the offline demo model. You said: "{said}".{seen} '
            "Configure a real provider to get real answers.")


def attachments_of(content: Any) -> list[str]:
    """What a user message attaches, as the demo describes it: each file (by name, with its
    words of text) and each image part (with its type)."""
    found = [f"{name} ({len(body.split())} words of text)" for name, body in FILE_RE.findall(text_of(content))]
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url") or "")
                if not url:
                    continue
                kind = url[5:url.index(";")] if url.startswith("data:") and ";" in url else "a linked image"
                found.append(f"an image ({kind})")
    return found


def text_of(content: Any) -> str:
    """The text of an OpenAI-style message content: a string, or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content
                        if isinstance(part, dict) and part.get("type") == "text")
    return ""


@hookimpl
def register_providers(register):
    register(DemoProvider)
