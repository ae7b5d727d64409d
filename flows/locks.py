"""Named locks across every process of a deployment, for work that must not overlap (two runs
writing the one bot comment of a pull request at the same moment).

Distributed mode locks in Redis (redis-py's lock, with an expiry so a killed holder cannot keep
it); the embedded mode runs in one process, where a thread lock per name is enough.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from django.conf import settings

from flows.capabilities import CapabilityError

# Longest a holder may keep a lock (then it expires) and longest a caller waits for it.
HOLD_S = 60
WAIT_S = 30

_guard = threading.Lock()
_local: dict[str, threading.Lock] = {}


@lru_cache(maxsize=1)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


@contextmanager
def named_lock(name: str) -> Iterator[None]:
    """Hold the lock `name` (waits up to WAIT_S; then a retryable CapabilityError)."""
    busy = CapabilityError(
        f"another run held '{name}' for more than {WAIT_S} s; try again", retryable=True
    )
    if settings.REDIS_URL:
        lock = _redis(settings.REDIS_URL).lock(
            f"{settings.FLOWS_LOCK_PREFIX}:{name}", timeout=HOLD_S, blocking_timeout=WAIT_S
        )
        if not lock.acquire():
            raise busy
        try:
            yield
        finally:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 - it expired meanwhile: nothing left to release
                pass
        return
    with _guard:
        lock = _local.setdefault(name, threading.Lock())
    if not lock.acquire(timeout=WAIT_S):
        raise busy
    try:
        yield
    finally:
        lock.release()
