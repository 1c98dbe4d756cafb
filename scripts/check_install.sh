#!/usr/bin/env bash
# The install test: what a new user's `make run` does first, on a fresh venv made with the
# stock `python3 -m venv` (its bundled pip, whatever version that is), then proof that the
# result is exactly the lock: `pip check`, every requested extra covered, every pin installed,
# and the console script answering. .ci/run runs it before the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
venv="$work/venv"

"$PYTHON" -m venv "$venv"
echo "check_install: fresh venv with the bundled $("$venv/bin/python" -m pip --version | cut -d' ' -f1-2)"
make --no-print-directory install VENV="$venv" PYTHON="$PYTHON"
"$venv/bin/python" -m pip check
"$venv/bin/python" scripts/check_lock.py requirements/pip.txt requirements/build.txt requirements/base.txt
"$venv/bin/bestchat" --version
echo "check_install: ok"
