"""``x-api-key`` → key → environment and plan; the documented 401 / 403 answers.

Keys are looked up by their public prefix and compared by SHA-256 in constant time; a found key is
cached for a few seconds (a revocation takes effect within ``ttl`` seconds).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from sleeptrack.store import ApiKey, Environment, Plan, Stores, hash_api_key, key_prefix, keys_equal, utcnow

from ._errors import ApiError, Detail
from ._limits import RateLimiter, UsageCounter

__all__ = ["Authenticator", "Caller", "KeyRecord"]


@dataclass(frozen=True)
class KeyRecord:
    id: int
    key_hash: str
    account_id: int
    environment_id: int
    environment: str
    plan: str
    revoked: bool
    expires_at: datetime | None


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key (clear text only in memory, for webhook headers), its environment and plan."""

    key: KeyRecord
    plan: Plan
    api_key: str

    @property
    def environment_id(self) -> int:
        return self.key.environment_id


class Authenticator:
    def __init__(
        self,
        stores: Stores,
        limiter: RateLimiter,
        usage: UsageCounter,
        ttl: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self.stores = stores
        self.limiter = limiter
        self.usage = usage
        self.ttl = ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, KeyRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def _lookup(self, key: str) -> KeyRecord | None:
        digest = hash_api_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None and now - hit[0] < self.ttl:
                self._cache.move_to_end(digest)
                return hit[1]
        found: KeyRecord | None = None
        with self.stores.db.read() as s:
            rows = s.execute(
                select(ApiKey, Environment.name)
                .join(Environment, ApiKey.environment_id == Environment.id)
                .where(ApiKey.prefix == key_prefix(key))
            ).all()
            for row, env_name in rows:
                if keys_equal(row.key_hash, digest):
                    found = KeyRecord(
                        row.id,
                        row.key_hash,
                        row.account_id,
                        row.environment_id,
                        env_name,
                        row.plan,
                        row.revoked_at is not None,
                        row.expires_at,
                    )
                    self.usage.set_base(row.id, row.period, row.calls_period)
        if found is not None:
            with self._lock:
                self._cache[digest] = (now, found)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return found

    def is_cached(self, key: str | None) -> bool:
        """Whether ``key`` (or its absence) can be judged without the database."""
        if not key:
            return True
        hit = self._cache.get(hash_api_key(key.strip()))
        return hit is not None and time.monotonic() - hit[0] < self.ttl

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def authenticate(self, api_key: str | None, *, data_api: bool = False) -> Caller:
        """The caller of a request, or the documented error (401, then 403 expiry, rate limit, quota)."""
        if not api_key:
            raise ApiError(401, Detail.API_KEY_NOT_PROVIDED if data_api else Detail.UNAUTHORIZED)
        record = self._lookup(api_key.strip())
        if record is None or record.revoked:
            raise ApiError(401, Detail.UNAUTHORIZED)
        plan = self.stores.plans.get(record.plan)
        now = utcnow()
        if (
            plan is None
            or (record.expires_at is not None and record.expires_at <= now)
            or (plan.expires_on is not None and plan.expires_on < now.date())
        ):
            raise ApiError(403, Detail.PLAN_EXPIRED)
        if not self.limiter.hit(record.id, plan.rate_limit):
            raise ApiError(403, Detail.RATE_LIMIT)
        if not self.usage.try_count(record.id, plan.quota):
            raise ApiError(403, Detail.QUOTA)
        return Caller(record, plan, api_key.strip())
