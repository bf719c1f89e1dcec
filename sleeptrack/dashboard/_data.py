"""What the dashboard reads and writes, always scoped to one account and one of its environments.

Every query here takes a :class:`Scope` and filters on its environment id (and, for keys, its account id),
so a row of another account or environment is simply "not found": pages answer 404 for it, whatever the id
in the URL.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from sleeptrack.analysis import (
    EPOCH_SECONDS,
    INVALID_PECULIARITIES,
    AverageReport,
    SessionState,
    SessionSummary,
    SleepReport,
    StageScheme,
    assess_peculiarities,
    compute_average_report,
)
from sleeptrack.jobs import session_report
from sleeptrack.store import (
    Account,
    ApiKey,
    Chunk,
    Environment,
    FinalResult,
    Plan,
    RealtimeResult,
    SleepSession,
    User,
    account_by_email,
    create_api_key,
    ensure_account,
    utcnow,
)

from ._svg import DayUsage

__all__ = [
    "ENVIRONMENTS",
    "PAGE_SIZE",
    "KeyRow",
    "NightSummary",
    "Overview",
    "Page",
    "Scope",
    "SessionDetail",
    "SessionRow",
    "UserRow",
    "account_by_email",
    "average_for_user",
    "create_account",
    "create_key",
    "get_session",
    "get_user",
    "list_keys",
    "list_sessions",
    "list_users",
    "overview",
    "rename_key",
    "resolve_scope",
    "revoke_key",
    "session_detail",
]

log = logging.getLogger("sleeptrack.dashboard")

ENVIRONMENTS = ("live", "test")
PAGE_SIZE = 25
T = TypeVar("T")


@dataclass(frozen=True)
class Scope:
    """The signed-in account and the environment it is looking at."""

    account_id: int
    email: str
    environment: str
    environment_id: int
    plan: str


def create_account(s: Session, email: str, password_hash: str, default_plan: str) -> Account:
    """A new account with its live and test environments (the caller checked the e-mail is free)."""
    account = ensure_account(s, email, default_plan)
    account.password_hash = password_hash
    s.flush()
    return account


def resolve_scope(s: Session, account_id: int, environment: str) -> Scope | None:
    """The scope of ``account_id`` in ``environment``; environments missing on old accounts are created."""
    account = s.get(Account, account_id)
    if account is None:
        return None
    env = s.scalar(select(Environment).where(Environment.account_id == account_id, Environment.name == environment))
    if env is None:
        return None
    return Scope(account.id, account.email, env.name, env.id, env.plan)


# ------------------------------------------------------------------------------------------------ pages
@dataclass
class Page(Generic[T]):
    items: list[T]
    page: int
    total: int
    per_page: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _page_number(page: int) -> int:
    return max(1, page)


# --------------------------------------------------------------------------------------- session validity
def scheme_of(sess: SleepSession) -> StageScheme:
    try:
        return StageScheme(sess.scheme)
    except ValueError:
        return StageScheme.FOUR


class _SessionTimes(Protocol):
    """What validity and time in bed need of a session (an ORM row or a lighter column tuple)."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def start_time(self) -> datetime: ...
    @property
    def end_time(self) -> datetime | None: ...
    @property
    def last_seq_num(self) -> int: ...


def time_in_bed(sess: _SessionTimes) -> float:
    """Seconds tracked: end − start once closed; the uploaded span while OPEN."""
    if sess.end_time is not None:
        return max(0.0, (sess.end_time - sess.start_time).total_seconds())
    return float(max(0, sess.last_seq_num + 1) * EPOCH_SECONDS)


class _ValidityCache:
    """Whether a COMPLETE session is valid, by (session id, final result time): computed once per process."""

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[datetime, bool]] = {}
        self._limit = limit

    def get(self, session_id: str, computed_at: datetime) -> bool | None:
        with self._lock:
            hit = self._values.get(session_id)
        return hit[1] if hit is not None and hit[0] == computed_at else None

    def put(self, session_id: str, computed_at: datetime, valid: bool) -> None:
        with self._lock:
            if len(self._values) >= self._limit:
                self._values.clear()
            self._values[session_id] = (computed_at, valid)


_validity = _ValidityCache()


def _validity_of(s: Session, sessions: Sequence[_SessionTimes]) -> dict[str, bool]:
    """Valid (True) / invalid (False) for the COMPLETE sessions among ``sessions``."""
    complete = {x.id: x for x in sessions if x.state == SessionState.COMPLETE}
    out: dict[str, bool] = {}
    if not complete:
        return out
    query = select(FinalResult.session_id, FinalResult.computed_at).where(FinalResult.session_id.in_(list(complete)))
    stamps: dict[str, datetime] = {row[0]: row[1] for row in s.execute(query)}
    missing = []
    for sid, stamp in stamps.items():
        cached = _validity.get(sid, stamp)
        if cached is None:
            missing.append(sid)
        else:
            out[sid] = cached
    for start in range(0, len(missing), 500):
        batch = missing[start : start + 500]
        rows = s.execute(
            select(FinalResult.session_id, FinalResult.computed_at, FinalResult.sleep_stages).where(
                FinalResult.session_id.in_(batch)
            )
        )
        for sid, stamp, stages in rows:
            pec = assess_peculiarities(stages or [], time_in_bed(complete[sid]))
            valid = not INVALID_PECULIARITIES.intersection(pec)
            _validity.put(sid, stamp, valid)
            out[sid] = valid
    return out


# --------------------------------------------------------------------------------------------- overview
@dataclass
class Overview:
    users: int
    sessions_by_state: dict[str, int]
    valid: int
    invalid: int
    hours_tracked: float
    usage: list[DayUsage]
    usage_start: date
    usage_end: date

    @property
    def sessions(self) -> int:
        return sum(self.sessions_by_state.values())


def overview(s: Session, scope: Scope, today: date | None = None, days: int = 30) -> Overview:
    """Counts of the environment and its sessions per day (UTC) over the last ``days`` days."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    users = s.scalar(select(func.count()).select_from(User).where(User.environment_id == scope.environment_id)) or 0
    by_state = {state.value: 0 for state in SessionState}
    for state, count in s.execute(
        select(SleepSession.state, func.count())
        .where(SleepSession.environment_id == scope.environment_id)
        .group_by(SleepSession.state)
    ):
        by_state[state] = count
    columns = (
        SleepSession.id,
        SleepSession.state,
        SleepSession.start_time,
        SleepSession.end_time,
        SleepSession.last_seq_num,
    )
    sessions: list[Any] = list(s.execute(select(*columns).where(SleepSession.environment_id == scope.environment_id)))
    validity = _validity_of(s, sessions)
    per_day: dict[date, list[float]] = {first + timedelta(days=i): [0, 0, 0, 0.0] for i in range(days)}
    seconds = 0.0
    for sess in sessions:
        tib = time_in_bed(sess)
        seconds += tib
        day = sess.start_time.astimezone(UTC).date()
        slot = per_day.get(day)
        if slot is None:
            continue
        valid = validity.get(sess.id)
        slot[0 if valid else 1 if valid is False else 2] += 1
        slot[3] += tib / 3600.0
    usage = [DayUsage(day, int(v[0]), int(v[1]), v[3], pending=int(v[2])) for day, v in sorted(per_day.items())]
    n_valid = sum(1 for v in validity.values() if v)
    return Overview(
        users=int(users),
        sessions_by_state=by_state,
        valid=n_valid,
        invalid=len(validity) - n_valid,
        hours_tracked=seconds / 3600.0,
        usage=usage,
        usage_start=first,
        usage_end=today,
    )


# ------------------------------------------------------------------------------------------------ users
@dataclass(frozen=True)
class UserRow:
    id: str
    created_at: datetime
    sessions: int
    last_session: datetime | None


def list_users(s: Session, scope: Scope, q: str = "", page: int = 1) -> Page[UserRow]:
    page = _page_number(page)
    where = [User.environment_id == scope.environment_id]
    if q.strip():
        where.append(User.id.contains(q.strip(), autoescape=True))
    total = s.scalar(select(func.count()).select_from(User).where(*where)) or 0
    counts = (
        select(
            SleepSession.user_id.label("uid"),
            func.count().label("n"),
            func.max(SleepSession.start_time).label("last"),
        )
        .where(SleepSession.environment_id == scope.environment_id)
        .group_by(SleepSession.user_id)
        .subquery()
    )
    rows = s.execute(
        select(User.id, User.created_at, counts.c.n, counts.c.last)
        .outerjoin(counts, counts.c.uid == User.id)
        .where(*where)
        .order_by(User.created_at.desc(), User.id)
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    items = []
    for uid, created, n, last in rows:
        if isinstance(last, datetime) and last.tzinfo is None:  # aggregate bypasses the column type on SQLite
            last = last.replace(tzinfo=UTC)
        elif isinstance(last, str):
            last = datetime.fromisoformat(last).replace(tzinfo=UTC)
        items.append(UserRow(uid, created, int(n or 0), last))
    return Page(items, page, int(total))


def get_user(s: Session, scope: Scope, user_id: str) -> User | None:
    return s.scalar(select(User).where(User.id == user_id, User.environment_id == scope.environment_id))


# --------------------------------------------------------------------------------------------- sessions
@dataclass(frozen=True)
class SessionRow:
    id: str
    user_id: str
    state: str
    start_time: datetime
    end_time: datetime | None
    created_timezone: str
    time_in_bed: float
    received: int
    valid: bool | None  # None while OPEN / CLOSED


def list_sessions(
    s: Session, scope: Scope, q: str = "", state: str = "", user_id: str | None = None, page: int = 1
) -> Page[SessionRow]:
    page = _page_number(page)
    where = [SleepSession.environment_id == scope.environment_id]
    if q.strip():
        where.append(
            or_(
                SleepSession.id.contains(q.strip(), autoescape=True),
                SleepSession.user_id.contains(q.strip(), autoescape=True),
            )
        )
    if state in {st.value for st in SessionState}:
        where.append(SleepSession.state == state)
    if user_id is not None:
        where.append(SleepSession.user_id == user_id)
    total = s.scalar(select(func.count()).select_from(SleepSession).where(*where)) or 0
    sessions = list(
        s.scalars(
            select(SleepSession)
            .where(*where)
            .order_by(SleepSession.start_time.desc(), SleepSession.id)
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
    )
    validity = _validity_of(s, sessions)
    items = [
        SessionRow(
            x.id,
            x.user_id,
            x.state,
            x.start_time,
            x.end_time,
            x.created_timezone,
            time_in_bed(x),
            x.received_count,
            validity.get(x.id),
        )
        for x in sessions
    ]
    return Page(items, page, int(total))


def get_session(s: Session, scope: Scope, session_id: str) -> SleepSession | None:
    return s.scalar(
        select(SleepSession).where(SleepSession.id == session_id, SleepSession.environment_id == scope.environment_id)
    )


@dataclass
class SessionDetail:
    session: SleepSession
    report: SleepReport
    #: (first epoch, epochs) of every run of missing data, from the stages shown.
    gaps: list[tuple[int, int]]
    #: seq_nums not received (OPEN / CLOSED: holes below the last one received).
    missing_seq_nums: list[int]
    #: (seq_num, why) of the chunks that arrived but could not be analysed.
    chunk_errors: list[tuple[int, str]]
    #: Epochs of the latest real-time result (OPEN / CLOSED), 0 if none.
    realtime_epochs: int = 0
    realtime_at: datetime | None = None
    version: str = field(default="")


def _gaps(stages: Sequence[int] | None) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    if not stages:
        return out
    start = None
    for i, code in enumerate([*stages, 0]):
        if code == -1 and start is None:
            start = i
        elif code != -1 and start is not None:
            out.append((start, i - start))
            start = None
    return out


def session_detail(s: Session, sess: SleepSession) -> SessionDetail:
    """The session's report exactly as ``GET /data/v3/sessions/{id}`` builds it, plus upload diagnostics."""
    report = session_report(s, sess)
    realtime_epochs = 0
    realtime_at: datetime | None = None
    if sess.state != SessionState.COMPLETE.value:
        latest = s.execute(
            select(RealtimeResult.created_at, RealtimeResult.inference_seq_num)
            .where(RealtimeResult.session_id == sess.id)
            .order_by(RealtimeResult.inference_seq_num.desc())
            .limit(1)
        ).first()
        if latest is not None:
            realtime_at = latest[0]
        realtime_epochs = len(report.sleep_stages or [])
    stages = report.sleep_stages or []
    received = set(s.scalars(select(Chunk.seq_num).where(Chunk.session_id == sess.id)))
    top = sess.last_seq_num
    missing = [i for i in range(top + 1) if i not in received]
    errors = [
        (seq, err or "")
        for seq, err in s.execute(
            select(Chunk.seq_num, Chunk.error)
            .where(Chunk.session_id == sess.id, Chunk.error.is_not(None))
            .order_by(Chunk.seq_num)
            .limit(200)
        )
    ]
    version = f"{sess.state}:{sess.received_count}:{realtime_epochs}:{len(stages)}"
    return SessionDetail(
        sess,
        report,
        _gaps(report.sleep_stages),
        missing,
        errors,
        realtime_epochs,
        realtime_at,
        version,
    )


# ------------------------------------------------------------------------------------------------ averages
@dataclass(frozen=True)
class NightSummary:
    session_id: str
    local_date: date
    summary: SessionSummary


def average_for_user(
    s: Session, scope: Scope, user_id: str, start_date: date, end_date: date, tz: tzinfo
) -> tuple[AverageReport, list[NightSummary]]:
    """The user's average-stats over ``start_date..end_date``, selected as ``GET /data/v1/users/{id}/average-stats``
    does: COMPLETE sessions starting between local midnight of ``start_date`` and of the day after
    ``end_date`` in ``tz``; invalid ones are left out and never-slept ones listed apart by the average itself.
    Also returns the slept nights (with a stat object), oldest first, for the per-night charts.
    """

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)

    sessions = s.scalars(
        select(SleepSession)
        .where(
            SleepSession.environment_id == scope.environment_id,
            SleepSession.user_id == user_id,
            SleepSession.state == SessionState.COMPLETE.value,
            SleepSession.start_time >= midnight(start_date),
            SleepSession.start_time < midnight(end_date + timedelta(days=1)),
        )
        .order_by(SleepSession.start_time)
    ).all()
    nights: list[NightSummary] = []
    for sess in sessions:
        report = session_report(s, sess)
        end_time = sess.end_time or report.end_time or sess.start_time
        summary = SessionSummary(
            session_id=sess.id,
            created_timezone=sess.created_timezone,
            start_time=sess.start_time,
            end_time=end_time,
            completed_time=sess.complete_time or end_time,
            peculiarities=report.peculiarities,
            stat=report.stat,
        )
        nights.append(NightSummary(sess.id, sess.start_time.astimezone(tz).date(), summary))
    average = compute_average_report([n.summary for n in nights], start_date, end_date)
    return average, [n for n in nights if n.summary.stat is not None]


# -------------------------------------------------------------------------------------------------- keys
@dataclass(frozen=True)
class KeyRow:
    id: int
    name: str
    prefix: str
    plan: Plan | None
    plan_name: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    calls_total: int
    calls_this_month: int

    @property
    def status(self) -> str:
        now = utcnow()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        if self.plan is not None and self.plan.expires_on is not None and self.plan.expires_on < now.date():
            return "plan expired"
        return "active"

    @property
    def quota_left(self) -> int | None:
        if self.plan is None or self.plan.quota is None:
            return None
        return max(0, self.plan.quota - self.calls_this_month)


def list_keys(s: Session, scope: Scope, plans: dict[str, Plan]) -> list[KeyRow]:
    period = utcnow().strftime("%Y-%m")
    keys = s.scalars(
        select(ApiKey)
        .where(ApiKey.account_id == scope.account_id, ApiKey.environment_id == scope.environment_id)
        .order_by(ApiKey.revoked_at.is_not(None), ApiKey.created_at.desc(), ApiKey.id.desc())
    )
    return [
        KeyRow(
            k.id,
            k.name,
            k.prefix,
            plans.get(k.plan),
            k.plan,
            k.created_at,
            k.revoked_at,
            k.expires_at,
            k.last_used_at,
            int(k.calls_total or 0),
            int(k.calls_period or 0) if k.period == period else 0,
        )
        for k in keys
    ]


def _own_key(s: Session, scope: Scope, key_id: int) -> ApiKey | None:
    return s.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.account_id == scope.account_id, ApiKey.environment_id == scope.environment_id
        )
    )


def create_key(s: Session, scope: Scope, plans: dict[str, Plan], name: str) -> Any:
    """A new key of the environment's plan; returns the store's ``NewKey`` (the only time the key is known)."""
    plan = plans.get(scope.plan)
    if plan is None:
        raise ValueError(f"the plan {scope.plan!r} of this environment is not defined in the plans file")
    return create_api_key(s, environment=scope.environment, plan=plan, account_email=scope.email, name=name)


def revoke_key(s: Session, scope: Scope, key_id: int) -> bool:
    key = _own_key(s, scope, key_id)
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        s.flush()
    return True


def rename_key(s: Session, scope: Scope, key_id: int, name: str) -> bool:
    key = _own_key(s, scope, key_id)
    if key is None:
        return False
    key.name = name
    s.flush()
    return True
