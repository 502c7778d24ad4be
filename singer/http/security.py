"""API keys and per-key request limits.

Keys come from ``SINGER_API_KEYS`` (comma-separated). A request names its key in the ``X-API-Key`` header; the
key's *owner id* (a short hash, never the key itself) is what jobs are filed under, so a job is reachable only
with the key that submitted it. Rate limiting is a token bucket per key (``SINGER_RATE_LIMIT`` per minute).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time


def owner_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyRing:
    def __init__(self, keys: str):
        self._owners = {k.strip(): owner_id(k.strip()) for k in keys.split(",") if k.strip()}

    def __bool__(self) -> bool:
        return bool(self._owners)

    def owner(self, key: str | None) -> str | None:
        """The owner id of ``key``, or None; compared in constant time."""
        if not key:
            return None
        for known, owner in self._owners.items():
            if hmac.compare_digest(known.encode(), key.encode()):
                return owner
        return None


class RateLimiter:
    """Token bucket per owner: ``per_minute`` requests, bursts up to the same number."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, owner: str) -> tuple[bool, float]:
        """(allowed, seconds until the next token)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(owner, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[owner] = (tokens - 1.0, now)
                return True, 0.0
            self._buckets[owner] = (tokens, now)
            return False, (1.0 - tokens) / self.rate
