"""What the usage-limit check adds to the admission of one answer (on the first-token path):
``Admission.start(...).status()`` then ``release``, warm, for one user, p50 and p99, on the
Redis admission (Celery workers) and the in-process one (embedded mode), each

* ``off``          - limits not checked at all (the admission before usage limits),
* ``none set``     - limits checked, nothing set for the user (resolution cached),
* ``all four set`` - requests per minute, answers at once, tokens per day and cost per month
  set (generous: every answer admitted); Redis checks its counters in the same script, the
  in-process admission sums the user's usage rows in the database (SQLite here).

    .venv/bin/python benchmarks/limits_bench.py [--runs 5000] [--redis redis://127.0.0.1:6379/10]

Builds an app on SQLite in a temporary directory; without ``--redis`` only the in-process rows
are measured. The Redis database given is used for the bench users' keys only (not flushed).
The three cases alternate in blocks; ``+p50``/``+p99`` are each case minus ``off``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from decimal import Decimal

from bestchat import create_app
from bestchat.extensions import db
from bestchat.models import User
from bestchat.models.limits import UserLimits
from bestchat.services import limits
from bestchat.services.admission import get_admission


def percentile(samples: list[float], fraction: float) -> float:
    return samples[min(int(len(samples) * fraction), len(samples) - 1)] * 1e6


BLOCKS = 20  # the three cases alternate in blocks, so drift (caches, Redis, the machine) hits each alike


def admit_once(admission, user_id: str, samples: list[float] | None) -> None:
    message_id = str(uuid.uuid4())
    started = time.perf_counter()
    admission.start(message_id, user_id).status()
    if samples is not None:
        samples.append(time.perf_counter() - started)
    admission.release(message_id)


def new_user(**overrides) -> str:
    user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.com", password_hash="x")
    db.session.add(user)
    db.session.flush()
    if overrides:
        db.session.add(UserLimits(user_id=user.id, **overrides))
    db.session.commit()
    return str(user.id)


def rows_for(name: str, redis_url: str | None, runs: int) -> list[tuple[str, str, float, float]]:
    tmp = tempfile.mkdtemp()
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/bench.db", "INSTANCE_PATH": tmp, "REDIS_URL": redis_url,
                      "JOBS_IN_PROCESS": redis_url is None, "JOBS_CONCURRENCY": 1000,
                      "GENERATION_QUEUE_LIMIT": 1000, "USER_MAX_ACTIVE_GENERATIONS": 4,
                      "RATELIMIT_SEND_PER_USER": ""})
    with app.app_context():
        db.create_all()
        plain = new_user()
        limited = new_user(limit_requests_per_minute=10**9, limit_concurrent_generations=1000,
                           limit_tokens_per_day=10**9, limit_cost_per_month=Decimal("1000000"))
        limits.invalidate()
        admission = get_admission(app)
        cases = {"off": (None, plain), "none set": (app, plain), "all four set": (app, limited)}
        samples: dict[str, list[float]] = {case: [] for case in cases}
        for block in range(BLOCKS + 1):  # block 0 warms up
            for case, (checked_app, user_id) in cases.items():
                admission.app = checked_app
                for _ in range(max(runs // BLOCKS, 1)):
                    admit_once(admission, user_id, samples[case] if block else None)
    rows = []
    for case, found in samples.items():
        found.sort()
        rows.append((name, case, percentile(found, 0.5), percentile(found, 0.99)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--redis", default=None, help="a Redis URL for the Redis admission rows")
    args = parser.parse_args()
    rows = rows_for("in-process", None, args.runs)
    if args.redis:
        rows += rows_for("redis", args.redis, args.runs)
    base = {name: (p50, p99) for name, limits_set, p50, p99 in rows if limits_set == "off"}
    print(f"admission of one answer, {args.runs} runs (microseconds)")
    print(f"| {'admission':<10} | {'limits':<12} | {'p50':>8} | {'p99':>8} | {'+p50':>7} | {'+p99':>7} |")
    print(f"|{'-' * 12}|{'-' * 14}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 9}|")
    for name, limits_set, p50, p99 in rows:
        print(f"| {name:<10} | {limits_set:<12} | {p50:8.1f} | {p99:8.1f} | {p50 - base[name][0]:+7.1f} | "
              f"{p99 - base[name][1]:+7.1f} |")


if __name__ == "__main__":
    main()
