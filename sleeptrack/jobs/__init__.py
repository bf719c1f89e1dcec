"""Analysis jobs: per-chunk features, real-time results every 10 epochs, the final report on close.

The job rows live in the database (:class:`sleeptrack.store.Job`); a :class:`JobQueue` runs them by
id. :class:`InProcessQueue` is the embedded default (worker processes of ``sleeptrack serve``).
"""

from ._inprocess import InProcessQueue
from ._lifecycle import add_job, close_session, close_stale_sessions, jobs_for_upload, recover
from ._queue import PRIORITY, JobQueue, JobReport, QueuedJob
from ._reports import session_document, session_report
from ._runner import MAX_ATTEMPTS, JobRunner, final_epoch_count

__all__ = [
    "MAX_ATTEMPTS",
    "PRIORITY",
    "InProcessQueue",
    "JobQueue",
    "JobReport",
    "JobRunner",
    "QueuedJob",
    "add_job",
    "close_session",
    "close_stale_sessions",
    "final_epoch_count",
    "jobs_for_upload",
    "recover",
    "session_document",
    "session_report",
]
