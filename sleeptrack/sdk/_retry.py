"""Retry policy (exponential backoff with full jitter, honouring ``Retry-After``) and timeouts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

__all__ = ["DEFAULT_RETRY", "DEFAULT_TIMEOUTS", "RetryPolicy", "Timeouts"]


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    Attempt ``n`` (1-based) that failed waits ``uniform(0, min(max_delay, initial_delay · factor^(n-1)))``
    ("full jitter", so many devices coming back after an outage do not hammer the server in step), but at
    least the server's ``Retry-After`` (capped at ``max_retry_after``).

    Parameters
    ----------
    max_attempts
        Attempts of one API call before it fails (reports, users, session creation and close).
        Uploads of spooled chunks never give up while tracking: the spool keeps them.
    initial_delay, factor, max_delay
        Backoff in seconds.
    max_retry_after
        Longest ``Retry-After`` honoured, in seconds.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    max_retry_after: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("delays must be >= 0 and factor >= 1")

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The jittered wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.initial_delay * self.factor ** max(0, attempt - 1))
        return (rng or random).uniform(0.0, ceiling)

    def delay(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before the next attempt: the backoff, but never less than ``Retry-After``."""
        wait = self.backoff(attempt, rng)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of an HTTP call (``read`` = waiting for the answer)."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUTS = Timeouts()
