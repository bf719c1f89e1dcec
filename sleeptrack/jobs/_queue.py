"""The job-queue interface: the database row is the job, a queue only carries its id.

Implementations: :class:`~sleeptrack.jobs.InProcessQueue` (worker processes or threads inside
``sleeptrack serve``); a distributed one (e.g. Celery on Redis) implements the same protocol and runs
:func:`sleeptrack.jobs.run_job` in its workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["PRIORITY", "JobQueue", "JobReport", "QueuedJob"]

#: Lower runs first: real-time results are latency-bound, features of single chunks can wait (the
#: real-time and final jobs compute any features still missing themselves).
PRIORITY = {"realtime": 0, "final": 1, "features": 2}


@dataclass(frozen=True, order=True)
class QueuedJob:
    priority: int
    job_id: int


@dataclass
class JobReport:
    """What running a job did (sent back from the worker to whoever waits for jobs)."""

    job_id: int
    kind: str = ""
    session_id: str = ""
    #: done | failed | retry | skipped
    outcome: str = "skipped"
    seconds: float = 0.0
    webhooks: int = 0
    retry_after: float | None = None
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


class JobQueue(Protocol):
    """Runs jobs by id, in priority order, somewhere."""

    def start(self) -> None: ...

    def submit(self, jobs: Iterable[QueuedJob]) -> None:
        """Queue jobs whose rows are committed (unknown or finished ids are skipped by the worker)."""

    def pending(self) -> int:
        """Jobs waiting in this queue (not yet handed to a worker)."""

    def stop(self, wait: bool = True) -> None: ...

    def add_listener(self, listener: Callable[[JobReport], None]) -> None:
        """Call ``listener`` (in some thread) after each job ran."""
