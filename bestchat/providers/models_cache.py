"""The per-user cache of ``available_models`` in Redis (nothing is cached in embedded mode).

One key per user, kept 24 hours. A change to a user's configs deletes that user's key; a
change to a global config deletes every user's key. The cached value carries a fingerprint of
the installed providers, so enabling or disabling a provider plugin never serves a stale list.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any, Iterable

from bestchat.redis_client import get_redis

TTL_SECONDS = 24 * 3600
_PREFIX = "bestchat:models:"


def _fingerprint(provider_names: Iterable[str]) -> str:
    return hashlib.sha256(",".join(sorted(provider_names)).encode()).hexdigest()[:16]


def get(user_id: uuid.UUID, provider_names: Iterable[str]) -> list[dict[str, Any]] | None:
    """The cached list, or None when absent, stale or when Redis is not configured."""
    redis = get_redis()
    if redis is None:
        return None
    raw = redis.get(f"{_PREFIX}{user_id}")
    if raw is None:
        return None
    cached = json.loads(raw)
    return cached["models"] if cached.get("providers") == _fingerprint(provider_names) else None


def put(user_id: uuid.UUID, provider_names: Iterable[str], models: list[dict[str, Any]]) -> None:
    redis = get_redis()
    if redis is not None:
        value = {"providers": _fingerprint(provider_names), "models": models}
        redis.set(f"{_PREFIX}{user_id}", json.dumps(value), ex=TTL_SECONDS)


def invalidate(user_id: uuid.UUID | None) -> None:
    """Forget one user's list, or everyone's when ``user_id`` is None (a global config changed)."""
    redis = get_redis()
    if redis is None:
        return
    if user_id is not None:
        redis.unlink(f"{_PREFIX}{user_id}")
        return
    batch = []
    for key in redis.scan_iter(match=f"{_PREFIX}*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            redis.unlink(*batch)
            batch.clear()
    if batch:
        redis.unlink(*batch)
