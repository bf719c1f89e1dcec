"""Rate limits and quotas shared by every API process: counters in Redis (scale-out).

* Rate limit: the same sliding window as :class:`RateLimiter` (the previous minute weighted by its
  overlap, plus this minute), its two counters in Redis keyed by wall-clock minute, checked and counted
  atomically by a Lua script.
* Quota: one counter per key and calendar month in Redis, seeded from the database's count the first
  time (or after Redis lost its data), incremented atomically unless the quota is reached; the
  database's usage columns are still written (every second) for the dashboard and as the seed.

If Redis cannot be reached, calls are let through (logged) rather than failing every request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sleeptrack.store import Database, Settings

from ._limits import RateLimiter, UsageCounter, current_period

__all__ = ["RedisRateLimiter", "RedisUsageCounter", "open_limits"]

log = logging.getLogger("sleeptrack.server")

_RATE = """
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
local p = tonumber(redis.call('GET', KEYS[2]) or '0')
if p * (1 - tonumber(ARGV[2])) + c + 1 > tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_QUOTA = """
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]); v = ARGV[2] end
if tonumber(ARGV[1]) >= 0 and tonumber(v) >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
return 1
"""


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, window: float = 60.0, prefix: str = "sleeptrack:rate") -> None:
        super().__init__(window)
        self.redis = _client(url)
        self.prefix = prefix
        self._script = self.redis.register_script(_RATE)

    def hit(self, key_id: int, limit: int | None, now: float | None = None) -> bool:
        if limit is None:
            return True
        t = time.time() if now is None else now
        index = int(t // self.window)
        elapsed = (t % self.window) / self.window
        keys = [f"{self.prefix}:{key_id}:{index}", f"{self.prefix}:{key_id}:{index - 1}"]
        try:
            return bool(self._script(keys=keys, args=[limit, elapsed, int(self.window * 2) + 5]))
        except Exception as exc:
            log.warning("rate limit not checked: Redis unreachable (%s)", type(exc).__name__)
            return True


class RedisUsageCounter(UsageCounter):
    def __init__(self, db: Database, url: str, prefix: str = "sleeptrack:quota") -> None:
        super().__init__(db)
        self.redis = _client(url)
        self.prefix = prefix
        self._script = self.redis.register_script(_QUOTA)

    def try_count(self, key_id: int, quota: int | None) -> bool:
        period = current_period()
        with self._lock:
            u = self._usage.get(key_id)
            seed = u.base + u.unflushed if u is not None and u.period == period else 0
        try:
            allowed = bool(
                self._script(keys=[f"{self.prefix}:{key_id}:{period}"], args=[quota or -1, seed, 40 * 86400])
            )
        except Exception as exc:
            log.warning("quota not checked: Redis unreachable (%s)", type(exc).__name__)
            allowed = True
        if allowed:
            super().try_count(key_id, None)  # count it for the database's usage columns
        return allowed


def open_limits(settings: Settings, db: Database) -> tuple[RateLimiter, UsageCounter]:
    """Redis-backed counters when the settings name a Redis (scale-out), else this process's own."""
    url = settings.resolved_redis_url
    if url:
        return RedisRateLimiter(url), RedisUsageCounter(db, url)
    return RateLimiter(), UsageCounter(db)
