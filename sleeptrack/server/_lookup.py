"""Scoped lookups: a key sees only its environment's users and sessions."""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from sleeptrack.store import BlobStore, Chunk, SleepSession, User, is_session_id, is_user_id

__all__ = ["blob_prefix", "chunk_keys", "delete_blobs", "find_session", "find_user"]


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


def chunk_keys(db: Session, where: ColumnElement[bool]) -> list[str]:
    """The blob keys of the chunks of the sessions ``where`` selects, read before their rows are deleted: a
    chunk the local store appended to a shared segment is found only by its key.

    The sessions are locked first (PostgreSQL), so no group commit adds a chunk to them meanwhile.
    """
    db.execute(select(SleepSession.id).where(where).with_for_update())
    return list(db.scalars(select(Chunk.blob_key).join(SleepSession, SleepSession.id == Chunk.session_id).where(where)))


def delete_blobs(blobs: BlobStore, keys: list[str], prefix: str) -> None:
    """Delete deleted sessions' chunks: by key, then whatever else is under their prefix."""
    blobs.delete_many(keys)
    blobs.delete_prefix(prefix)
