"""What checking a request's settings against the providers' options costs: the check the
OpenAI-compatible endpoint runs on every request before it stores anything
(``bestchat.providers.registry.check_settings``, the same as a conversation's creation).

    .venv/bin/python benchmarks/settings_check_bench.py [--runs 20000]

Builds an embedded app (SQLite in a temporary directory, the installed plugins) and times the
check of four settings (temperature, max_tokens, top_p and the server's created_via), warm.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bestchat import create_app
from bestchat.providers.registry import check_settings

SETTINGS = {"temperature": 0.7, "max_tokens": 256, "top_p": 0.9, "created_via": "openai"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20000)
    args = parser.parse_args()
    app = create_app({"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db", "INSTANCE_PATH": tempfile.mkdtemp()})
    with app.app_context():
        for _ in range(2000):  # warm
            check_settings(SETTINGS)
        runs = []
        for _ in range(args.runs):
            started = time.perf_counter()
            check_settings(SETTINGS)
            runs.append(time.perf_counter() - started)
    runs.sort()
    print(f"check_settings, {len(SETTINGS)} settings, {args.runs} runs: "
          f"p50 {runs[len(runs) // 2] * 1e6:.1f} us, p99 {runs[int(len(runs) * 0.99)] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
