"""Scoped lookups: a key sees only its environment's users and sessions."""

from __future__ import annotations

from sqlalchemy.orm import Session

from sleeptrack.store import SleepSession, User, is_session_id, is_user_id

__all__ = ["blob_prefix", "find_session", "find_user"]


def find_user(db: Session, environment_id: int, user_id: str | None) -> User | None:
    if not is_user_id(user_id):
        return None
    user = db.get(User, user_id)
    return user if user is not None and user.environment_id == environment_id else None


def find_session(db: Session, environment_id: int, session_id: str, user_id: str | None = None) -> SleepSession | None:
    """The session, if it is in the environment (and belongs to ``user_id`` when given)."""
    if not is_session_id(session_id):
        return None
    s = db.get(SleepSession, session_id)
    if s is None or s.environment_id != environment_id:
        return None
    if user_id is not None and s.user_id != user_id:
        return None
    return s


def blob_prefix(environment_id: int, user_id: str, session_id: str | None = None) -> str:
    base = f"{environment_id}/{user_id}"
    return base if session_id is None else f"{base}/{session_id}"
