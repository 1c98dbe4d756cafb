#!/usr/bin/env python
"""Prompt assembly of a long conversation: a 250K-token branch of 2,000 messages (token counts
stored, as the server stores them when each message is written) fitted into a 128K window,
warm, p50/p95 over N runs, for three chains:

* ``truncate``             - the newest whole turns that fit
* ``compress, truncate``   - old tool outputs and files shortened to references, then truncation
* ``summarize, truncate``  - a stored summary reused (the steady state: no model call)

Each run is what a generation does before calling its provider: ``build_items`` (the branch,
its uploads, the system prompt) + ``run_chain`` (the strategies and the guard) + ``render``
(OpenAI messages). Nothing is counted again but the system prompt and the notes. Target
(issue 16): under 50 ms.

Results go to ``benchmarks/results/context_bench-<stamp>.json`` (every sample) and ``.md``.

    .venv/bin/python benchmarks/context_bench.py [--runs 200] [--out STAMP]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from git_state import git_state

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins" / "context"))

WINDOW = 128_000
RESERVE = 4096  # CONTEXT_ANSWER_RESERVE
MESSAGES = 2000
TARGET_TOKENS = 250_000
CHAINS = [["truncate"], ["compress", "truncate"], ["summarize", "truncate"]]
WORDS = ("the of and a to in is you that it was for on are as with they at be this have from or one had by word "
         "but not what all were we when your can said there use an each which she do how their if will up other "
         "about out many then them these so some her would make like into time has look two more write go see "
         "number way could people than first water been call who its now find long down day did get come made "
         "may part café données 東京 λόγος 1234 3.14159 {\"key\": [1, 2]} def f(x): return x**2").split()


def conversation(rng: random.Random) -> tuple[list[Any], dict[str, Any]]:
    """2,000 messages (questions, answers, tool rounds with long outputs, a file every 40 turns)
    of about 250K tokens, with their counts stored, and the uploads they attach."""
    from bestchat.context.items import UploadFacts
    from bestchat.context.tokens import count_text, message_tokens
    from bestchat.providers.base import ToolCall
    from bestchat.services.client_tools import tool_calls_part, tool_result_part
    from bestchat.store.claimed import BranchEntry

    def prose(tokens: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(int(tokens * 0.8)))

    entries: list[BranchEntry] = []
    uploads: dict[str, UploadFacts] = {}

    def add(role: str, content: str, parts: list[dict[str, Any]] = ()) -> None:
        calls = [call for part in parts if part.get("type") == "tool_calls" for call in part["tool_calls"]]
        tokens = message_tokens(content) + (count_text(json.dumps(calls, ensure_ascii=False)) if calls else 0)
        entries.append(BranchEntry(f"m{len(entries):05d}", entries[-1].id if entries else None, role, "complete",
                                   content, list(parts), tokens))

    turn = 0
    while len(entries) < MESSAGES - 2:
        parts = []
        if turn % 40 == 0:
            text = prose(2000)
            upload_id = f"u{turn}"
            uploads[upload_id] = UploadFacts(f"notes-{turn}.md", "text/markdown", "text", text, count_text(text))
            parts.append({"type": "file", "upload_id": upload_id, "name": f"notes-{turn}.md", "mime": "text/markdown"})
        add("user", prose(rng.randint(20, 120)), parts)
        if turn % 8 == 3 and len(entries) < MESSAGES - 4:
            call = ToolCall(id=f"call_{turn}", name="url_fetch", arguments={"url": f"https://example.com/{turn}"})
            add("assistant", "", [tool_calls_part([call])])
            add("tool", prose(rng.randint(300, 700)), [tool_result_part(call.id)])
        add("assistant", prose(rng.randint(50, 150)))
        turn += 1
    if len(entries) < MESSAGES - 1:
        add("assistant", prose(50))
    add("user", "So, what do you conclude? " + prose(60))
    assert len(entries) == MESSAGES
    return entries, uploads


class StoredSummary:
    """The conversation's summaries: one made on the first run, then reused (``make`` counts
    calls, so the steady state is shown to make none)."""

    def __init__(self, count):
        self.count, self.summaries, self.made = count, [], 0

    def latest(self, items):
        ids = {item.message_id for item in items}
        return next((s for s in reversed(self.summaries) if s.last_message_id in ids), None)

    def make(self, items, previous):
        from bestchat.context.base import Summary
        from bestchat.context.tokens import message_tokens

        self.made += 1
        text = "The user and the assistant discussed " + " ".join(WORDS[:700])
        summary = Summary(f"s{self.made}", text, message_tokens(text), items[-1].message_id,
                          (previous.covered if previous else 0) + len(items))
        self.summaries.append(summary)
        return summary


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default=None, help="result file stem after context_bench- (default: a time stamp)")
    args = parser.parse_args()
    stamp = args.out or time.strftime("%Y%m%d-%H%M%S")

    import bestchat_context
    from bestchat.context.base import total
    from bestchat.context.chain import run_chain
    from bestchat.context.items import build_items
    from bestchat.context.render import render
    from bestchat.context.tokens import DEFAULT_ENCODING, count_text, warm

    warm()
    entries, uploads = conversation(random.Random(16))
    strategies = {cls.name: cls for cls in (bestchat_context.Truncate, bestchat_context.Compress,
                                            bestchat_context.Summarize)}
    settings = {"CONTEXT_SUMMARY_MAX_TOKENS": 1024, "CONTEXT_COMPRESS_KEEP_TURNS": 2, "CONTEXT_COMPRESS_MIN_TOKENS": 200}
    budget = WINDOW - min(RESERVE, WINDOW // 4)
    system_prompt = "You are a helpful assistant. Answer precisely and cite the files you were given."
    summaries = StoredSummary(count_text)
    conversation_tokens = total(build_items(entries, uploads, system_prompt=system_prompt, count=count_text))

    def assemble(chain: list[str]) -> tuple[Any, list[dict[str, Any]]]:
        items = build_items(entries, uploads, system_prompt=system_prompt, count=count_text, image_tokens=1000)
        assembled = run_chain(items, budget=budget, chain=chain, strategies=strategies, count=count_text,
                              summaries=summaries, settings=settings)
        return assembled, render(assembled.items, vision=False, load_image=lambda upload_id: None)

    rows = []
    for chain in CHAINS:
        assembled, messages = assemble(chain)  # warm-up (and, for summarize, the one summary made)
        made = summaries.made
        phases: dict[str, list[float]] = {"build_items": [], "run_chain": [], "render": [], "total": []}
        for _ in range(args.runs):
            t0 = time.perf_counter()
            items = build_items(entries, uploads, system_prompt=system_prompt, count=count_text, image_tokens=1000)
            t1 = time.perf_counter()
            assembled = run_chain(items, budget=budget, chain=chain, strategies=strategies, count=count_text,
                                  summaries=summaries, settings=settings)
            t2 = time.perf_counter()
            messages = render(assembled.items, vision=False, load_image=lambda upload_id: None)
            t3 = time.perf_counter()
            for name, value in (("build_items", t1 - t0), ("run_chain", t2 - t1), ("render", t3 - t2), ("total", t3 - t0)):
                phases[name].append(value * 1000)
        assert summaries.made == made, "the steady state made a summary"
        assert assembled.tokens <= budget
        rows.append({"chain": chain, "runs": args.runs, "ran": [step.name for step in assembled.ran],
                     "prompt_tokens": assembled.tokens, "messages_sent": len(messages),
                     "dropped": len(assembled.dropped), "samples_ms": phases,
                     "p50_ms": {name: round(percentile(v, 0.5), 2) for name, v in phases.items()},
                     "p95_ms": {name: round(percentile(v, 0.95), 2) for name, v in phases.items()}})
    results = {
        "stamp": stamp, "command": " ".join([".venv/bin/python", "benchmarks/context_bench.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, {os.uname().release}, python {sys.version.split()[0]}",
        "git": git_state(), "encoding": DEFAULT_ENCODING, "messages": len(entries),
        "conversation_tokens": conversation_tokens, "window": WINDOW, "budget": budget, "target_ms": 50,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"context_bench-{stamp}.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    (RESULTS / f"context_bench-{stamp}.md").write_text(text)
    print(text)


def report(results: dict[str, Any]) -> str:
    git = results["git"]
    lines = [f"# Prompt assembly benchmark context_bench-{results['stamp']}", "",
             f"Machine: {results['machine']}. Command: `{results['command']}`. Commit {git['commit'][:10]} "
             f"({len(git['changed_files'])} files changed in the work tree).", "",
             f"Conversation: {results['messages']} messages, {results['conversation_tokens']:,} tokens "
             f"({results['encoding']}, counts stored); window {results['window']:,}, budget {results['budget']:,}. "
             f"Each run: build_items + run_chain + render, warm. Target: total p50 and p95 under "
             f"{results['target_ms']} ms.", "",
             "| chain | runs | steps that ran | prompt tokens | messages sent | build_items p50 | run_chain p50 | "
             "render p50 | **total p50 / p95** | target |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        p50, p95 = row["p50_ms"], row["p95_ms"]
        met = "met" if p95["total"] < results["target_ms"] else "missed"
        lines.append(f"| {', '.join(row['chain'])} | {row['runs']} | {', '.join(row['ran']) or '-'} | "
                     f"{row['prompt_tokens']:,} | {row['messages_sent']} | {p50['build_items']} | {p50['run_chain']} | "
                     f"{p50['render']} | **{p50['total']} / {p95['total']}** ms | {met} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
