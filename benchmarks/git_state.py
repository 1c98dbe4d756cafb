"""The commit a benchmark measured, recorded beside its results (read-only git calls)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def git_state() -> dict[str, Any]:
    """The commit measured, and the files that differed from it."""
    def run(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": run("rev-parse", "HEAD"),
            "changed_files": [line[3:] for line in run("status", "--porcelain").splitlines()]}
