"""The Data API's session document (``GET /data/v3/sessions/{id}`` and the SESSION_COMPLETE webhook)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sleeptrack.analysis import SessionState, SleepReport, StageScheme, build_report
from sleeptrack.store import FinalResult, RealtimeResult, SleepSession

__all__ = ["session_document", "session_report"]


def session_report(db: Session, s: SleepSession) -> SleepReport:
    """The report of ``s``: the full-night result once COMPLETE, else the latest real-time result."""
    state = SessionState(s.state)
    scheme = StageScheme(s.scheme)
    if state is SessionState.COMPLETE:
        final = db.get(FinalResult, s.id)
        if final is not None:
            return build_report(
                s.id,
                final.sleep_stages,
                s.start_time,
                s.end_time,
                state=state,
                snoring_stages=final.snoring_stages if s.snoring else None,
                scheme=scheme,
                created_timezone=s.created_timezone,
                unexpected_end_time=s.unexpected_end_time,
                realtime_allowed=s.realtime,
                model_version=final.model_version,
            )
        state = SessionState.CLOSED  # not reachable through the API: COMPLETE is written with its result
    latest = None
    if s.realtime:
        latest = db.scalars(
            select(RealtimeResult)
            .where(RealtimeResult.session_id == s.id)
            .order_by(RealtimeResult.inference_seq_num.desc())
            .limit(1)
        ).first()
    stages = latest.sleep_stages if latest is not None else []
    snoring = (latest.snoring_stages if latest is not None else []) if s.snoring else None
    return build_report(
        s.id,
        stages,
        s.start_time,
        s.end_time,
        state=state,
        snoring_stages=snoring,
        scheme=scheme,
        created_timezone=s.created_timezone,
        unexpected_end_time=s.unexpected_end_time,
        realtime_allowed=s.realtime,
        model_version=latest.model_version if latest is not None else None,
    )


def session_document(db: Session, s: SleepSession, tz: tzinfo, timezone_name: str) -> dict[str, Any]:
    """The ``result`` object of ``GET /data/v3/sessions/{id}``, times in ``tz``."""
    return session_report(db, s).to_dict(tz, timezone_name)
