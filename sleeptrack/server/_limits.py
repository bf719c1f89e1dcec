"""Rate limits (per key, per minute) and quota counting (per key, per calendar month, UTC).

Both live in the API process: exact for one process; with several API processes each enforces the rate
limit on its own traffic and the quota is shared through the database (counts flushed every second).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import case, update

from sleeptrack.store import ApiKey, Database, utcnow

__all__ = ["RateLimiter", "UsageCounter", "current_period"]


def current_period() -> str:
    return utcnow().strftime("%Y-%m")


class RateLimiter:
    """Sliding-window counter: the previous minute's count, weighted by its overlap, plus this minute's."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._state: dict[int, tuple[int, int, int]] = {}  # key -> (window index, count, previous count)

    def hit(self, key_id: int, limit: int | None, now: float | None = None) -> bool:
        """Count one call; False (and not counted) if it would exceed ``limit`` calls per window."""
        if limit is None:
            return True
        t = time.monotonic() if now is None else now
        index = int(t // self.window)
        elapsed = (t % self.window) / self.window
        with self._lock:
            win, count, previous = self._state.get(key_id, (index, 0, 0))
            if win != index:
                previous = count if win == index - 1 else 0
                count = 0
            estimate = previous * (1.0 - elapsed) + count
            if estimate + 1 > limit:
                self._state[key_id] = (index, count, previous)
                return False
            self._state[key_id] = (index, count + 1, previous)
            return True


@dataclass
class _Usage:
    period: str
    base: int
    unflushed: int


class UsageCounter:
    """API calls per key: a base read from the database plus this process's calls not yet written."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._usage: dict[int, _Usage] = {}

    def set_base(self, key_id: int, period: str, count: int) -> None:
        """What the database says (called when a key's row is (re)loaded)."""
        with self._lock:
            u = self._usage.get(key_id)
            if u is None or u.period != period:
                self._usage[key_id] = _Usage(period, count, 0 if u is None or u.period != period else u.unflushed)
            else:
                u.base = count

    def try_count(self, key_id: int, quota: int | None) -> bool:
        """Count one call in the current period; False (not counted) if the quota is used up."""
        period = current_period()
        with self._lock:
            u = self._usage.get(key_id)
            if u is None or u.period != period:
                u = self._usage[key_id] = _Usage(period, 0, u.unflushed if u is not None and u.period == period else 0)
            if quota is not None and u.base + u.unflushed >= quota:
                return False
            u.unflushed += 1
            return True

    def flush(self) -> None:
        with self._lock:
            pending = {k: (u.period, u.unflushed) for k, u in self._usage.items() if u.unflushed}
            for k in pending:
                u = self._usage[k]
                u.base += u.unflushed
                u.unflushed = 0
        if not pending:
            return
        now = utcnow()
        with self.db.write() as s:
            for key_id, (period, delta) in pending.items():
                s.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .values(
                        calls_total=ApiKey.calls_total + delta,
                        calls_period=case((ApiKey.period == period, ApiKey.calls_period + delta), else_=delta),
                        period=period,
                        last_used_at=now,
                    )
                )
