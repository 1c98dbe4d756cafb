#!/usr/bin/env python
"""Where a worker's CPU per token goes: the generation job run in this process, with parts of
it switched off in turn (this script only; no repository code is changed).

Runs N generation jobs (``bestchat.services.generation.generate``, the body of the Celery task)
concurrently on gevent against the stamped fake server of ``stream_bench.py``, with the
production settings (PostgreSQL database ``bench``, Redis db 9: run ``stream_bench.py`` once
first so the schema exists; do not run both at once), and reports CPU ms per token for:

* ``direct``   - the provider alone (``OpenAIProvider.stream``), no job around it
* ``full``     - the whole job: provider, frame loop, Redis bus, periodic saves, endings
* ``nobus``    - the job without publishing its frames (the frame writer's Redis batch)
* ``nobus_nosave`` - and without the periodic partial-content saves
* ``litellm_direct`` - the litellm provider alone (``LiteLLMProvider.stream``, model
  ``openai/bench?...`` with ``api_base`` at the fake server), no job around it
* ``litellm_full`` - the whole job with a litellm connection (``litellm/openai/bench?...``)

Every variant also reports TTFT and per-token delay p95 (the fake server stamps each token with
its emission time): for ``*direct`` when the provider yields it, for the jobs when the provider
hands it to the frame writer (``Running.received``, wrapped by this script). So ``--jobs N``
is also a capacity check of N concurrent streams in one worker process (SLO: TTFT p95 <
500 ms, delay p95 < 50 ms); the publishing to Redis and the web tier are not in it.

    .venv/bin/python benchmarks/generation_cpu.py [--jobs 20] [--delay 0.02] [--variants direct,full]
        [--database-url postgresql://postgres@127.0.0.1/bench] [--redis-url redis://127.0.0.1:6379/9]

The database must have the schema (``bestchat db upgrade``, or one ``stream_bench.py`` run).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402

HERE = Path(__file__).resolve().parent
VARIANTS = ("direct", "full", "nobus", "nobus_nosave", "litellm_direct", "litellm_full")
DATABASE_URL = "postgresql://postgres@127.0.0.1/bench"
REDIS_URL = "redis://127.0.0.1:6379/9"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, in this order")
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    for variant in args.variants.split(","):  # one fresh process per variant: nothing patched leaks across
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
        subprocess.run([sys.executable, __file__, "--variant", variant, str(args.jobs), str(args.delay),
                        args.database_url, args.redis_url], check=True)


def run_variant(variant: str, jobs: int, delay: float, database_url: str, redis_url: str) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(BESTCHAT_DATABASE_URL=database_url,
                      BESTCHAT_REDIS_URL=redis_url,
                      BESTCHAT_ENV_NAME="production", BESTCHAT_SECRET_KEY="bench-" + secrets.token_hex(32),
                      BESTCHAT_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
                      BESTCHAT_INSTANCE_PATH=f"/tmp/bestchat-gencpu-{os.getpid()}",
                      BESTCHAT_OUTBOUND_ALLOW='["127.0.0.0/8"]')  # the fake provider is on loopback
    logging.disable(logging.INFO)
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fake = subprocess.Popen([sys.executable, str(HERE / "stream_bench.py"), "fake-server", "--port", str(port)],
                            start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        _measure(variant, jobs, delay, port)
    finally:
        os.killpg(fake.pid, signal.SIGTERM)
        fake.wait(timeout=10)


def _measure(variant: str, jobs: int, delay: float, port: int) -> None:
    from sqlalchemy import select

    from bestchat import create_app
    from bestchat.extensions import db
    from bestchat.models import Conversation, Message, ProviderConfig
    from bestchat.providers.base import ProviderSettings
    from bestchat.security.outbound import Policy
    from bestchat.services import accounts, generation
    from bestchat.streaming import get_bus
    from bestchat import crypto

    app = create_app()
    model = f"bench?tokens=200&delay={delay:g}"
    base_url = f"http://127.0.0.1:{port}/v1"
    provider_name = "litellm" if variant.startswith("litellm") else "openai"
    if provider_name == "litellm":
        model = f"openai/{model}"
    ids: list[str] = []
    with app.app_context():
        user = accounts.register(f"gencpu-{secrets.token_hex(4)}@example.com", "gencpu horse battery")
        db.session.add(ProviderConfig(user_id=user.id, provider=provider_name, name="bench", base_url=base_url,
                                      api_key_encrypted=crypto.encrypt("sk-bench-000000000000"),
                                      enabled_models=[], fallbacks=[], options={}, priority=100, enabled=True))
        for _ in range(jobs + 2):
            conversation = Conversation(user_id=user.id, title="gencpu")
            db.session.add(conversation)
            db.session.flush()
            question = Message(conversation_id=conversation.id, role="user", content="hello", status="complete")
            db.session.add(question)
            db.session.flush()
            answer = Message(conversation_id=conversation.id, parent_id=question.id, role="assistant",
                             status="pending", model=f"{provider_name}/{model}")
            db.session.add(answer)
            db.session.flush()
            ids.append(str(answer.id))
        db.session.commit()

    bus = get_bus(app)
    if variant in ("nobus", "nobus_nosave"):
        bus.append_many = lambda *a, **k: None
    if variant == "nobus_nosave":
        from bestchat.streaming import frame_writer

        frame_writer.Running._save_all = lambda self: None

    ttft: list[float] = []
    delays: list[float] = []
    if variant.endswith("direct"):
        if provider_name == "litellm":
            from bestchat_litellm import LiteLLMProvider as provider_class
            provider_class.warm_up()  # as a worker does at start
        else:
            from bestchat_openai import OpenAIProvider as provider_class
        provider = provider_class(ProviderSettings(api_key="sk-bench-000000000000", base_url=base_url,
                                                   outbound=Policy.allowing("127.0.0.0/8")))

        def work(_: str) -> None:
            start = time.time()
            first = True
            for event in provider.stream(model, [{"role": "user", "content": "hello"}]):
                text = getattr(event, "text", "")
                if "@" in text:  # tokN@<stamp>: the fake server's emission time
                    now = time.time()
                    if first:
                        ttft.append(now - start)
                        first = False
                    delays.append(now - float(text.split("@", 1)[1]))
    else:
        from bestchat.streaming import frame_writer

        started: dict[str, float] = {}
        handed = frame_writer.Running.received

        def received(self: Any, live: Any, text: str) -> None:  # the provider's text reaching the frame writer
            if "@" in text:
                now = time.time()
                if started.pop(str(live.message_id), None) is not None:
                    ttft.append(now - live_start[str(live.message_id)])
                delays.append(now - float(text.split("@", 1)[1]))
            handed(self, live, text)

        frame_writer.Running.received = received
        live_start: dict[str, float] = {}

        def work(message_id: str) -> None:
            started[message_id] = live_start[message_id] = time.time()
            with app.app_context():
                generation.generate(message_id)

    gevent.joinall([gevent.spawn(work, m) for m in ids[:2]], raise_error=True)  # warm connections
    ttft.clear()
    delays.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(work, m) for m in ids[2:]], raise_error=True, timeout=120)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    frames = ""
    if variant != "direct":
        with app.app_context():
            rows = db.session.scalars(select(Message).where(Message.id.in_([uuid.UUID(m) for m in ids[2:]]))).all()
            statuses = {m.status for m in rows}
            frames = f", statuses {sorted(statuses)}, {sum(m.last_seq for m in rows) / len(rows):.0f} frames/answer"
    if delays:
        frames += (f", TTFT p95 {_p95(ttft) * 1000:.0f} ms, token delay p95 {_p95(delays) * 1000:.1f} ms, "
                  f"{len(delays)} tokens")
    print(f"{variant:14s} {jobs} jobs x 200 tokens at {delay * 1000:g} ms/token: CPU {cpu * 1000:.0f} ms "
          f"= {cpu * 1000 / (jobs * 200):.3f} ms/token (wall {wall:.1f} s{frames})", flush=True)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--variant":
        run_variant(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        main()
