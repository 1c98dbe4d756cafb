#!/usr/bin/env python
"""Upload benchmark: 20 MB files posted to ``POST /api/v1/uploads`` over loopback, and the web
process's memory while it receives them.

One script, bounded, everything on 127.0.0.1, every process it starts is killed on exit. It
migrates a fresh SQLite database in a temporary instance folder, starts the web server as
``bestchat serve`` does (``gunicorn -k gevent -w 1 wsgi:app``, embedded mode: no Redis, local
upload storage under the instance folder), registers a user and an API token, warms the worker
up (one small text and one small image upload: modules and the token encoding loaded), then
measures, for each kind of file:

* ``image``: a 20 MB PNG (a PNG signature, then random bytes): the streaming path alone
  (spool, sha256, sniffing, copy to storage, the row), no text to extract;
* ``text``:  20 MB of UTF-8 text: the same plus decoding, the cut at ``UPLOAD_TEXT_MAX_CHARS``
  (2 000 000 characters) and the token count of what is kept.

Each upload has new bytes (its last 32 bytes change), so de-duplication never short-cuts it.
Throughput = file bytes / wall time of the request (client's view: multipart body sent,
JSON answer received). Memory: the gunicorn worker's ``VmRSS`` (``/proc/<pid>/status``)
idle after the warm-up, sampled every 5 ms while uploading, and ``VmHWM`` (its peak), reset
before each kind through ``/proc/<pid>/clear_refs`` so it is the peak of the uploads alone.

    .venv/bin/python benchmarks/upload_bench.py [--runs 8] [--size-mb 20] [--out STEM]

Results: ``benchmarks/results/upload_bench-<stamp>.json`` (every sample) and ``.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = REPO / ".venv" / "bin"
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO))

from bestchat.testing.processes import free_port, stop_group, wait_for  # noqa: E402
from git_state import git_state  # noqa: E402

PASSWORD = "bench horse battery staple"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs`` 5); False when not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class Sampler(threading.Thread):
    """VmRSS of one process every ``interval`` seconds until stopped."""

    def __init__(self, pid: int, interval: float = 0.005):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(status_kb(self.pid)["VmRSS"])
            time.sleep(self.interval)

    def stop(self) -> list[int]:
        self.done.set()
        self.join()
        return self.samples


def make_file(path: Path, kind: str, size: int) -> None:
    """``size`` bytes of a PNG-signed random file or of UTF-8 text, written in 1 MiB chunks."""
    rng = __import__("random").Random(1)
    with open(path, "wb") as out:
        written = 0
        if kind == "image":
            out.write(PNG_SIGNATURE)
            written = len(PNG_SIGNATURE)
        words = [f"word{n} ".encode() for n in range(5000)] + ["übergrößenträger ".encode(), b"\n"]
        while written < size:
            want = min(1024 * 1024, size - written)
            if kind == "image":
                chunk = rng.randbytes(want)
            else:
                chunk = b"".join(rng.choice(words) for _ in range(want // 6 + 1))[:want]
                chunk = chunk.decode("utf-8", "ignore").encode()  # whole characters only
                chunk += b" " * (want - len(chunk))
            out.write(chunk)
            written += len(chunk)


def new_tail(path: Path, run: int) -> None:
    """Make the file's bytes new (its last 32 bytes: ASCII, so text stays text)."""
    with open(path, "r+b") as handle:
        handle.seek(-32, os.SEEK_END)
        handle.write(f"{run:08d}{secrets.token_hex(12)}".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="uploads per kind of file")
    parser.add_argument("--size-mb", type=float, default=20.0, help="file size in MB (10^6 bytes)")
    parser.add_argument("--out", default=None, help="result file stem after upload_bench- (default: a time stamp)")
    args = parser.parse_args()
    stamp = args.out or time.strftime("%Y%m%d-%H%M%S")
    size = int(args.size_mb * 1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="bestchat-upload-bench-"))
    from cryptography.fernet import Fernet

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BESTCHAT_")},
           "BESTCHAT_ENV_NAME": "production", "BESTCHAT_SECRET_KEY": "bench-" + secrets.token_hex(32),
           "BESTCHAT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
           "BESTCHAT_INSTANCE_PATH": str(tmp / "instance"),
           "BESTCHAT_RATELIMIT_REGISTER_PER_IP": "1000/60", "BESTCHAT_RATELIMIT_LOGIN_PER_IP": "1000/60",
           "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    subprocess.run([str(BIN / "bestchat"), "db", "upgrade"], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    log = open(tmp / "web.log", "wb")
    # The flags of `bestchat serve` (one gunicorn gevent worker in embedded mode).
    web = subprocess.Popen([str(BIN / "gunicorn"), "--worker-class", "gevent", "--workers", "1",
                            "--bind", f"127.0.0.1:{port}", "--access-logfile", "-", "wsgi:app"],
                           cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, 60, "web process")
        worker = int(subprocess.run(["pgrep", "-P", str(web.pid)], capture_output=True, text=True)
                     .stdout.split()[0])
        http = httpx.Client(base_url=base, timeout=120)
        assert http.post("/api/v1/auth/register", json={"email": "bench@example.com", "password": PASSWORD}
                         ).status_code == 201
        login = http.post("/api/v1/auth/login", json={"email": "bench@example.com", "password": PASSWORD})
        http.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        token = http.post("/api/v1/tokens", json={"name": "bench"}).json()["token"]
        api = httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"})
        cold = status_kb(worker)
        for name, data in (("warm.txt", b"warm up the text path " * 100), ("warm.png", PNG_SIGNATURE + b"x" * 100)):
            answer = api.post("/api/v1/uploads", files={"file": (name, data)})
            assert answer.status_code == 201, answer.text
        time.sleep(0.5)
        idle = status_kb(worker)
        rows: dict[str, Any] = {}
        for kind in ("image", "text"):
            path = tmp / f"upload.{'png' if kind == 'image' else 'txt'}"
            make_file(path, kind, size)
            peak_reset = reset_peak(worker)
            before = status_kb(worker)
            sampler = Sampler(worker)
            sampler.start()
            seconds = []
            for run in range(args.runs):
                new_tail(path, run)
                with open(path, "rb") as handle:
                    started = time.perf_counter()
                    answer = api.post("/api/v1/uploads", files={"file": (path.name, handle)})
                    seconds.append(time.perf_counter() - started)
                assert answer.status_code == 201, answer.text
                assert answer.json()["size"] == size
            samples = sampler.stop()
            after = status_kb(worker)
            mbps = sorted(size / 1e6 / s for s in seconds)
            rows[kind] = {
                "runs": args.runs, "bytes": size, "kind": answer.json()["kind"],
                "text_tokens": answer.json()["text_tokens"], "details": answer.json()["details"],
                "seconds": [round(s, 4) for s in seconds],
                "mb_per_s_p50": round(statistics.median(mbps), 1), "mb_per_s_min": round(mbps[0], 1),
                "mb_per_s_max": round(mbps[-1], 1), "ms_p50": round(statistics.median(seconds) * 1000, 1),
                "rss_kb_before": before["VmRSS"], "rss_kb_sampled_max": max(samples + [after["VmRSS"]]),
                "rss_kb_after": after["VmRSS"],
                "hwm_kb": after["VmHWM"] if peak_reset else None, "peak_reset": peak_reset,
                "rss_samples": len(samples),
            }
            path.unlink()
        stored = sum(p.stat().st_size for p in (tmp / "instance" / "uploads").rglob("*") if p.is_file())
    finally:
        stop_group(web, grace=10)
    results = {
        "stamp": stamp,
        "command": " ".join([".venv/bin/python", "benchmarks/upload_bench.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} cores, {os.uname().release}, python {sys.version.split()[0]}",
        "server": "gunicorn -k gevent -w 1 wsgi:app, embedded (SQLite), local storage",
        "git": git_state(), "file_bytes": size,
        "worker_rss_kb": {"cold": cold["VmRSS"], "idle_after_warm_up": idle["VmRSS"]},
        "stored_bytes_total": stored, "rows": rows,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    text = markdown(results)
    (RESULTS / f"upload_bench-{stamp}.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"upload_bench-{stamp}.md").write_text(text)
    print(text)


def markdown(results: dict[str, Any]) -> str:
    mb = lambda kb: f"{kb / 1024:.1f}"  # noqa: E731
    idle = results["worker_rss_kb"]["idle_after_warm_up"]
    lines = [
        f"# upload_bench {results['stamp']}", "",
        f"`{results['command']}` on {results['machine']}; {results['server']}; commit "
        f"`{results['git']['commit'][:10]}`{' (with local changes)' if results['git']['changed_files'] else ''}.",
        "",
        f"File: {results['file_bytes'] / 1e6:.1f} MB, new bytes each upload. Web worker RSS: cold "
        f"{mb(results['worker_rss_kb']['cold'])} MiB, idle after warm-up {mb(idle)} MiB.", "",
        "| file | uploads | MB/s p50 (min-max) | ms p50 | RSS before | RSS max sampled | VmHWM (peak) | peak - idle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in results["rows"].items():
        peak = row["hwm_kb"] if row["hwm_kb"] is not None else row["rss_kb_sampled_max"]
        lines.append(
            f"| {kind} | {row['runs']} | **{row['mb_per_s_p50']}** ({row['mb_per_s_min']}-{row['mb_per_s_max']}) | "
            f"{row['ms_p50']} | {mb(row['rss_kb_before'])} MiB | {mb(row['rss_kb_sampled_max'])} MiB | "
            f"{mb(peak)} MiB | **+{mb(peak - idle)} MiB** |")
    text_row = results["rows"].get("text")
    if text_row:
        lines += ["", f"Text upload: {text_row['text_tokens']} tokens kept, details {text_row['details']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
