"""The per-user cache of ``available_models`` in Redis (nothing is cached in embedded mode),
and of what the user's groups allow (:mod:`bestchat.services.groups`).

One key per user, kept 24 hours. A change to a user's configs deletes that user's key; a
change to a global config deletes every user's key. The cached value carries a fingerprint of
the installed providers, so enabling or disabling a provider plugin never serves a stale list.

Group access sits next to it: one key per user (``<key>:access``) and one for the whole
server (does any group restrict anything at all), each stamped with the *groups generation*, a
counter that every change of a group or a membership increments once committed. An entry of
another generation is stale: a reader that raced a change (read the database before it,
stored after it) stamped its entry with the generation it read before, so the entry is never
trusted after the change. One round trip reads all three. Without Redis (embedded mode: one
process) the same entries live in the app's memory.

While no group restricts anything (the usual install), a process that has read so keeps that
answer for ``SITE_SETTINGS_REFRESH_SECONDS`` (1 s) without asking Redis again, so a send and a
generation then cost no round trip for groups; a process that makes a change forgets it at
once, others within that interval (as for every setting changed in the console).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any, Iterable

from flask import current_app

from bestchat.redis_client import get_redis

TTL_SECONDS = 24 * 3600
_PREFIX = "bestchat:models:"
_ACCESS = ":access"
_GENERATION = "bestchat:groups:generation"
_RESTRICTING = "bestchat:groups:restricting"
_LOCAL = "bestchat_group_access"
_UNRESTRICTED = "bestchat_groups_unrestricted"  # {"generation", "until"}: no group restricts
LOCAL_MAX_USERS = 10_000


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
        redis.unlink(f"{_PREFIX}{user_id}", f"{_PREFIX}{user_id}{_ACCESS}")
        return
    batch = []
    for key in redis.scan_iter(match=f"{_PREFIX}*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            redis.unlink(*batch)
            batch.clear()
    if batch:
        redis.unlink(*batch)


# ---- group access ---------------------------------------------------------------------------

def get_access(user_id: uuid.UUID) -> tuple[int, dict[str, Any] | None, bool | None]:
    """``(generation, the user's access, whether any group restricts)``: the current groups
    generation, then the user's cached access (``{"models", "tools"}``) and the server-wide flag,
    each None when absent or of another generation."""
    redis = get_redis()
    if redis is None:
        local = _local()
        generation = local["generation"]
        return generation, local["users"].get(user_id), local["restricting"]
    unrestricted = current_app.extensions.get(_UNRESTRICTED)
    now = time.monotonic()
    if unrestricted is not None and now < unrestricted["until"]:
        return unrestricted["generation"], None, False
    raw_generation, raw_access, raw_restricting = redis.mget(
        _GENERATION, f"{_PREFIX}{user_id}{_ACCESS}", _RESTRICTING)
    generation = int(raw_generation or 0)
    access = json.loads(raw_access) if raw_access is not None else None
    restricting = json.loads(raw_restricting) if raw_restricting is not None else None
    flag = restricting["restricting"] if restricting and restricting.get("generation") == generation else None
    if flag is False:
        _remember_unrestricted(generation, now)
    return generation, access["access"] if access and access.get("generation") == generation else None, flag


def _remember_unrestricted(generation: int, now: float) -> None:
    interval = float(current_app.config.get("SITE_SETTINGS_REFRESH_SECONDS", 1.0))
    current_app.extensions[_UNRESTRICTED] = {"generation": generation, "until": now + interval}


def put_access(user_id: uuid.UUID, generation: int, access: dict[str, Any], restricting: bool) -> None:
    """Remember the user's access and the server-wide flag, read at ``generation``."""
    redis = get_redis()
    if redis is None:
        local = _local()
        if local["generation"] == generation:
            if len(local["users"]) >= LOCAL_MAX_USERS:  # bounded: start over rather than grow
                local["users"].clear()
            local["users"][user_id] = access
            local["restricting"] = restricting
        return
    with redis.pipeline(transaction=False) as pipe:
        pipe.set(f"{_PREFIX}{user_id}{_ACCESS}", json.dumps({"generation": generation, "access": access}),
                 ex=TTL_SECONDS)
        pipe.set(_RESTRICTING, json.dumps({"generation": generation, "restricting": restricting}),
                 ex=TTL_SECONDS)
        pipe.execute()
    if not restricting:
        _remember_unrestricted(generation, time.monotonic())


def groups_changed() -> None:
    """A group or a membership changed (committed): every cached access is stale."""
    redis = get_redis()
    if redis is None:
        local = _local()
        local.update(generation=local["generation"] + 1, users={}, restricting=None)
        return
    current_app.extensions.pop(_UNRESTRICTED, None)
    redis.incr(_GENERATION)


def _local() -> dict[str, Any]:
    """This process's entries when there is no Redis (embedded mode is one process)."""
    return current_app.extensions.setdefault(_LOCAL, {"generation": 0, "users": {}, "restricting": None})
