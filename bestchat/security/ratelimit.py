"""Fixed-window rate limits: Redis-backed when Redis is configured, in-process otherwise.

``limit(setting, key)`` counts one hit and raises :class:`~bestchat.errors.RateLimited` (with
``retry_after``) past the rule.
Rules are strings ``"count/seconds"`` from settings.

Sign-in throttling (:func:`check_login_allowed`, :func:`login_failed`, :func:`login_succeeded`)
counts *failed* passwords, and who may still try depends on where the attempt comes from:

- a browser holding a "known device" cookie for the account (signed, set by a successful
  sign-in) is limited only by its own failures (``RATELIMIT_LOGIN_PER_DEVICE``);
- an address that signed in to the account before (remembered ``LOGIN_KNOWN_ADDRESS_DAYS``)
  is limited only by the failures from that address (``RATELIMIT_LOGIN_PER_DEVICE``);
- anyone else is also limited by the account's failures from such unknown sources
  (``RATELIMIT_LOGIN_PER_ACCOUNT``).

Guessing an account's password is slow from anywhere, yet nobody can lock its owner out: a
correct password from a device or address that succeeded before is never refused for failures
made elsewhere. ``RATELIMIT_LOGIN_PER_IP`` still counts every attempt of an address.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

from flask import Flask, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bestchat.errors import RateLimited
from bestchat.redis_client import get_redis


class MemoryLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, count: int, seconds: int) -> int:
        """Count a hit; return 0 if allowed, else seconds until the window resets."""
        now = time.monotonic()
        with self._lock:
            if len(self._windows) > 100_000:  # drop expired windows now and then
                self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            reset, hits = self._windows.get(key, (now + seconds, 0))
            if reset <= now:
                reset, hits = now + seconds, 0
            hits += 1
            self._windows[key] = (reset, hits)
        return 0 if hits <= count else max(1, int(reset - now + 0.999))

    def count(self, key: str) -> tuple[int, int]:
        """Hits in the key's current window and seconds until it resets ((0, 0) for none)."""
        now = time.monotonic()
        with self._lock:
            reset, hits = self._windows.get(key, (now, 0))
        return (hits, max(1, int(reset - now + 0.999))) if reset > now else (0, 0)

    def reset(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def mark(self, key: str, seconds: int) -> None:
        """Remember ``key`` for ``seconds`` (see :meth:`marked`)."""
        with self._lock:
            self._windows[f"mark:{key}"] = (time.monotonic() + seconds, 0)

    def marked(self, key: str) -> bool:
        with self._lock:
            reset, _ = self._windows.get(f"mark:{key}", (0.0, 0))
        return reset > time.monotonic()


class RedisLimiter:
    def __init__(self, client) -> None:
        self._redis = client

    def hit(self, key: str, count: int, seconds: int) -> int:
        name = f"bestchat:rl:{key}"
        pipe = self._redis.pipeline()
        pipe.incr(name)
        pipe.expire(name, seconds, nx=True)
        pipe.ttl(name)
        hits, _, ttl = pipe.execute()
        return 0 if hits <= count else max(1, int(ttl))

    def count(self, key: str) -> tuple[int, int]:
        name = f"bestchat:rl:{key}"
        pipe = self._redis.pipeline()
        pipe.get(name)
        pipe.ttl(name)
        hits, ttl = pipe.execute()
        return (int(hits), max(1, int(ttl))) if hits is not None and ttl and ttl > 0 else (0, 0)

    def reset(self, key: str) -> None:
        self._redis.delete(f"bestchat:rl:{key}")

    def mark(self, key: str, seconds: int) -> None:
        self._redis.set(f"bestchat:rl:mark:{key}", "1", ex=seconds)

    def marked(self, key: str) -> bool:
        return bool(self._redis.exists(f"bestchat:rl:mark:{key}"))


def init_rate_limiter(app: Flask) -> None:
    client = get_redis(app)
    app.extensions["bestchat_limiter"] = RedisLimiter(client) if client else MemoryLimiter()


def parse_rule(rule: str) -> tuple[int, int]:
    count, seconds = rule.split("/")
    return int(count), int(seconds)


def _rate_limited(retry_after: int) -> RateLimited:
    return RateLimited("rate_limited", f"too many attempts; retry in {retry_after} s", retry_after=retry_after)


def limit(setting: str, key: str) -> None:
    """Count one hit against the rule in setting ``setting`` for ``key``; :class:`RateLimited`
    (with ``retry_after``) past it."""
    count, seconds = parse_rule(current_app.config[setting])
    retry_after = current_app.extensions["bestchat_limiter"].hit(f"{setting}:{key}", count, seconds)
    if retry_after:
        raise _rate_limited(retry_after)


# ---- sign-in throttling ---------------------------------------------------------------------

DEVICE_COOKIE = "bestchat_device"
DEVICE_COOKIE_PATH = "/api/v1/auth"
DEVICE_COOKIE_DAYS = 365
DEVICE_ACCOUNTS_KEPT = 20  # accounts one browser is remembered for


def _account_key(email: str) -> str:
    """A keyed hash of the account's email: what the device cookie and counters name."""
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:24]


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="bestchat.known-device")


def _device() -> dict | None:
    """This browser's known-device cookie, when its signature holds: ``{"d": id, "a": [...]}``."""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return None
    try:
        device = _device_serializer().loads(value, max_age=DEVICE_COOKIE_DAYS * 86400)
    except BadSignature:
        return None
    if not (isinstance(device, dict) and isinstance(device.get("d"), str) and isinstance(device.get("a"), list)):
        return None
    return device


def _source(email: str, ip: str) -> tuple[str, bool]:
    """The counter key of this attempt's source, and whether that source is known to the account."""
    account = _account_key(email)
    device = _device()
    if device is not None and account in device["a"]:
        return f"device:{device['d']}:{account}", True
    limiter = current_app.extensions["bestchat_limiter"]
    return f"address:{ip}:{account}", limiter.marked(f"known:{ip}:{account}")


def _failure_counters(email: str, ip: str) -> list[tuple[str, str]]:
    """The (setting, key) counters a wrong password from this source counts against: its
    source always, the account too when the source is unknown to it."""
    source, known = _source(email, ip)
    counters = [("RATELIMIT_LOGIN_PER_DEVICE", source)]
    if not known:
        counters.append(("RATELIMIT_LOGIN_PER_ACCOUNT", f"account:{_account_key(email)}"))
    return counters


def check_login_allowed(email: str, ip: str) -> None:
    """:class:`RateLimited` when this attempt's source, or (for an unknown source) the account,
    failed too often."""
    limiter = current_app.extensions["bestchat_limiter"]
    for setting, key in _failure_counters(email, ip):
        allowed, _ = parse_rule(current_app.config[setting])
        hits, retry_after = limiter.count(f"{setting}:{key}")
        if hits >= allowed:
            raise _rate_limited(retry_after)


def login_failed(email: str, ip: str) -> None:
    """Count a wrong password against its source and, from an unknown source, the account."""
    limiter = current_app.extensions["bestchat_limiter"]
    for setting, key in _failure_counters(email, ip):
        count, seconds = parse_rule(current_app.config[setting])
        limiter.hit(f"{setting}:{key}", count, seconds)


def login_succeeded(email: str, ip: str, response) -> None:
    """Forget the source's failures, remember the address, and mark this browser as a known
    device of the account (a signed cookie, sent only to the sign-in routes)."""
    from bestchat.security.authn import cookie_secure

    limiter = current_app.extensions["bestchat_limiter"]
    account = _account_key(email)
    device = _device()
    limiter.reset(f"RATELIMIT_LOGIN_PER_DEVICE:address:{ip}:{account}")
    if device is not None:
        limiter.reset(f"RATELIMIT_LOGIN_PER_DEVICE:device:{device['d']}:{account}")
    limiter.mark(f"known:{ip}:{account}", int(current_app.config["LOGIN_KNOWN_ADDRESS_DAYS"]) * 86400)
    device = device or {"d": secrets.token_urlsafe(16), "a": []}
    accounts = [account] + [a for a in device["a"] if a != account]
    value = _device_serializer().dumps({"d": device["d"], "a": accounts[:DEVICE_ACCOUNTS_KEPT]})
    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_COOKIE_DAYS * 86400, path=DEVICE_COOKIE_PATH,
                        httponly=True, samesite="Lax", secure=cookie_secure(current_app))
