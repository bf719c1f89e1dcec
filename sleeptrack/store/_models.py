"""The database schema (SQLAlchemy 2.0). Every table a migration in ``migrations/versions`` creates.

Scoping: every user, session, chunk, result and webhook belongs to one environment (``live`` or
``test``) of one account; an API key sees only its environment's data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Account",
    "ApiKey",
    "Base",
    "Chunk",
    "ChunkFeatures",
    "Environment",
    "FinalResult",
    "Job",
    "RealtimeResult",
    "SleepSession",
    "User",
    "UtcDateTime",
    "Webhook",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive, as UTC)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; attach a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON, list[int]: JSON}


class Account(Base):
    """A dashboard account; ``password_hash`` (argon2) is set by the dashboard's sign-up."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    """``live`` or ``test`` of an account, with the plan new keys of that environment get."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(16))
    plan: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key: only its SHA-256 and a short public prefix are stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    plan: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    #: Calls since creation, and calls in the current quota period (``period`` = "YYYY-MM", UTC).
    calls_total: Mapped[int] = mapped_column(BigInteger, default=0)
    calls_period: Mapped[int] = mapped_column(BigInteger, default=0)
    period: Mapped[str] = mapped_column(String(7), default="")


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    to_be_deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class SleepSession(Base):
    """A sleep session; the plan's features are fixed when it is created."""

    __tablename__ = "sessions"
    __table_args__ = (
        # At most one OPEN session per user: the database enforces the 409.
        Index(
            "uq_sessions_open_user",
            "user_id",
            unique=True,
            sqlite_where=text("state = 'OPEN'"),
            postgresql_where=text("state = 'OPEN'"),
        ),
        Index("ix_sessions_user_start", "user_id", "start_time"),
        Index("ix_sessions_state_start", "state", "start_time"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="OPEN")
    inference_type: Mapped[str] = mapped_column(String(16))
    service: Mapped[str] = mapped_column(String(200), default="NOSERVICE")
    callback_url: Mapped[str | None] = mapped_column(Text)
    #: The API key that set ``callback_url``, encrypted (webhooks carry it in ``x-api-key``).
    callback_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    callback_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_time: Mapped[datetime]
    end_time: Mapped[datetime | None]
    unexpected_end_time: Mapped[datetime | None]
    complete_time: Mapped[datetime | None]
    last_seq_num: Mapped[int] = mapped_column(Integer, default=-1)
    received_count: Mapped[int] = mapped_column(Integer, default=0)
    last_upload_at: Mapped[datetime | None]
    plan: Mapped[str] = mapped_column(String(64))
    scheme: Mapped[str] = mapped_column(String(16))
    snoring: Mapped[bool] = mapped_column(Boolean)
    realtime: Mapped[bool] = mapped_column(Boolean)


class Chunk(Base):
    """One uploaded 30-second chunk (its bytes are in the blob store under ``blob_key``)."""

    __tablename__ = "chunks"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    seq_num: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer)
    inference_type: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Why the chunk could not be analysed (its epoch is then -1), if it could not.
    error: Mapped[str | None] = mapped_column(Text)


class ChunkFeatures(Base):
    """The engine's features of one chunk (float32 little-endian), tagged with the engine that made them."""

    __tablename__ = "chunk_features"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    seq_num: Mapped[int] = mapped_column(Integer, primary_key=True)
    engine_version: Mapped[str] = mapped_column(String(100))
    n_features: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RealtimeResult(Base):
    """Causal stages of epochs ``0 .. 10 * (inference_seq_num + 1) - 1`` after the ``seq_num``-th upload."""

    __tablename__ = "realtime_results"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    inference_seq_num: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq_num: Mapped[int] = mapped_column(Integer)
    sleep_stages: Mapped[list[int]]
    snoring_stages: Mapped[list[int] | None] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Where causal staging stopped (:class:`~sleeptrack.analysis.RealtimeState`), kept on the session's
    #: latest result only, so that the next result computes only its new epochs. Not loaded unless asked for.
    causal_state: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), deferred=True)


class FinalResult(Base):
    """The full-night stages of a COMPLETE session (the report is rebuilt from them on every read)."""

    __tablename__ = "final_results"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    sleep_stages: Mapped[list[int]]
    snoring_stages: Mapped[list[int] | None] = mapped_column(JSON)
    model_version: Mapped[str] = mapped_column(String(100))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    """The outbox: a webhook to deliver, written in the transaction of the result it announces."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    api_key_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    user_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    #: pending → delivered | failed (gave up after the last attempt).
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class Job(Base):
    """An analysis job; the row is the truth, queues only carry its id.

    ``kind``: ``features`` (one chunk), ``realtime`` (after the ``seq_num``-th upload) or ``final``
    (``seq_num`` = -1). ``status``: pending → running → done | failed. A running job whose
    ``locked_until`` has passed is taken to be abandoned by a dead worker and runs again.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "session_id", "seq_num"),
        Index("ix_jobs_status_priority", "status", "priority"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    seq_num: Mapped[int] = mapped_column(Integer, default=-1)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
