"""Typed results of the API (field names as in the Data API, snake_case), built from the JSON ``result``.

Every object keeps the JSON it came from in ``raw`` (``to_dict()`` gives it back), so nothing the server
adds is lost; stages come back as the engine's :class:`~sleeptrack.analysis.Hypnogram`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from sleeptrack.analysis import Hypnogram, StageScheme, parse_datetime

__all__ = [
    "AverageReport",
    "CreatedSession",
    "InferenceType",
    "OpenSession",
    "Report",
    "Session",
    "SessionState",
    "SleepSession",
    "Stat",
    "UploadResult",
    "UserInfo",
]


class InferenceType(StrEnum):
    """What a session's chunks are: the on-device mel spectrogram (default) or audio files."""

    MELSPECTROGRAM = "MELSPECTROGRAM"
    AUDIO = "AUDIO"


class SessionState(StrEnum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    COMPLETE = "COMPLETE"


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return parse_datetime(str(value))


def _ints(value: Any) -> list[int] | None:
    if value is None:
        return None
    return [int(v) for v in value]


def _dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"unexpected {what} in the server's answer: {type(data).__name__}")
    return data


@dataclass(frozen=True)
class CreatedSession:
    session_id: str
    state: str
    session_start_time: datetime

    @classmethod
    def from_dict(cls, data: Any) -> CreatedSession:
        d = _dict(data, "session")
        start = _time(d.get("session_start_time"))
        if start is None:
            raise ValueError("the server did not give the session's start time")
        return cls(str(d["session_id"]), str(d.get("state", "OPEN")), start)


@dataclass(frozen=True)
class UploadResult:
    session_id: str
    seq_num: int
    duplicate: bool

    @classmethod
    def from_dict(cls, data: Any) -> UploadResult:
        d = _dict(data, "upload result")
        return cls(str(d.get("session_id", "")), int(d.get("seq_num", -1)), bool(d.get("duplicate", False)))


@dataclass(frozen=True)
class OpenSession:
    """The user's OPEN session on the server (``GET /ai/v1/sessions/open``)."""

    session_id: str
    last_seq_num: int
    received_seq_nums_count: int
    inference_type: InferenceType

    @classmethod
    def from_dict(cls, data: Any) -> OpenSession:
        d = _dict(data, "open session")
        last = d.get("last_seq_num")
        return cls(
            str(d["session_id"]),
            -1 if last is None else int(last),
            int(d.get("received_seq_nums_count") or 0),
            InferenceType(d.get("inference_type") or InferenceType.MELSPECTROGRAM),
        )


@dataclass(frozen=True)
class SessionInfo:
    """``last_session_info`` of a user."""

    session_id: str
    inference_type: str | None
    service: str | None
    start_time: datetime | None
    end_time: datetime | None
    state: str | None
    complete_time: datetime | None

    @classmethod
    def from_dict(cls, data: Any) -> SessionInfo:
        d = _dict(data, "session info")
        return cls(
            str(d.get("session_id")),
            d.get("inference_type"),
            d.get("service"),
            _time(d.get("start_time")),
            _time(d.get("end_time")),
            d.get("state"),
            _time(d.get("complete_time")),
        )


@dataclass(frozen=True)
class UserInfo:
    user_id: str
    to_be_deleted: bool
    last_session_info: SessionInfo | None

    @classmethod
    def from_dict(cls, data: Any) -> UserInfo:
        d = _dict(data, "user")
        last = d.get("last_session_info")
        return cls(
            str(d["user_id"]), bool(d.get("to_be_deleted", False)), SessionInfo.from_dict(last) if last else None
        )


@dataclass(frozen=True)
class Session:
    """The ``session`` object of a report (also what ``request_analysis()`` returns while tracking)."""

    id: str
    state: SessionState
    start_time: datetime
    end_time: datetime | None
    unexpected_end_time: datetime | None
    created_timezone: str
    sleep_stages: list[int] | None
    snoring_stages: list[int] | None
    breath_stages: list[int] | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Session:
        d = _dict(data, "session")
        start = _time(d.get("start_time"))
        if start is None:
            raise ValueError("the session has no start_time")
        return cls(
            id=str(d["id"]),
            state=SessionState(d.get("state", "OPEN")),
            start_time=start,
            end_time=_time(d.get("end_time")),
            unexpected_end_time=_time(d.get("unexpected_end_time")),
            created_timezone=str(d.get("created_timezone") or "UTC"),
            sleep_stages=_ints(d.get("sleep_stages")),
            snoring_stages=_ints(d.get("snoring_stages")),
            breath_stages=_ints(d.get("breath_stages")),
        )

    def hypnogram(self, timezone: str | None = None, model_version: str | None = None) -> Hypnogram:
        """The stages so far as a :class:`Hypnogram` (empty if the server has none yet).

        A hypnogram whose codes never exceed 1 is read as 4-stage unless it is known to be 2-stage
        (``StageScheme.TWO``); the Data API does not say which plan produced it.
        """
        stages = self.sleep_stages or []
        snoring = self.snoring_stages
        if snoring is not None and len(snoring) != len(stages):
            snoring = None
        return Hypnogram(
            stages,
            self.start_time,
            timezone or self.created_timezone,
            StageScheme.FOUR,
            snoring=snoring,
            model_version=model_version,
        )


@dataclass(frozen=True)
class Stat:
    """The Data API's Stat object (seconds, ratios 0–1, times in the requested zone); ``None`` = not available."""

    sleep_time: datetime | None = None
    wake_time: datetime | None = None
    sleep_index: int | None = None
    sleep_latency: int | None = None
    wakeup_latency: int | None = None
    light_latency: int | None = None
    deep_latency: int | None = None
    rem_latency: int | None = None
    time_in_bed: int | None = None
    time_in_sleep_period: int | None = None
    time_in_sleep: int | None = None
    time_in_wake: int | None = None
    time_in_light: int | None = None
    time_in_deep: int | None = None
    time_in_rem: int | None = None
    time_in_snoring: int | None = None
    time_in_no_snoring: int | None = None
    sleep_efficiency: float | None = None
    sleep_ratio: float | None = None
    wake_ratio: float | None = None
    light_ratio: float | None = None
    deep_ratio: float | None = None
    rem_ratio: float | None = None
    snoring_ratio: float | None = None
    no_snoring_ratio: float | None = None
    waso_count: int | None = None
    longest_waso: int | None = None
    sleep_cycle_count: int | None = None
    sleep_cycle: int | None = None
    sleep_cycle_time: list[datetime] | None = None
    snoring_count: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Stat:
        d = _dict(data, "stat")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "raw" or f.name not in d:
                continue
            v = d[f.name]
            if v is None:
                values[f.name] = None
            elif f.name in ("sleep_time", "wake_time"):
                values[f.name] = _time(v)
            elif f.name == "sleep_cycle_time":
                values[f.name] = [t for t in (_time(x) for x in v) if t is not None]
            elif "ratio" in f.name or f.name == "sleep_efficiency":
                values[f.name] = float(v)
            else:
                values[f.name] = int(v)
        return cls(**values, raw=dict(d))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class Report:
    """One session's report (``GET /data/v3/sessions/{id}``)."""

    timezone: str
    peculiarities: list[str]
    missing_data_ratio: float
    session: Session
    stat: Stat | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        d = _dict(data, "report")
        stat = d.get("stat")
        return cls(
            timezone=str(d.get("timezone") or "UTC"),
            peculiarities=[str(p) for p in d.get("peculiarities") or []],
            missing_data_ratio=float(d.get("missing_data_ratio") or 0.0),
            session=Session.from_dict(d["session"]),
            stat=Stat.from_dict(stat) if stat else None,
            raw=dict(d),
        )

    @property
    def state(self) -> SessionState:
        return self.session.state

    @property
    def is_complete(self) -> bool:
        return self.session.state is SessionState.COMPLETE

    @property
    def model_version(self) -> str | None:
        value = self.raw.get("model_version")
        return None if value is None else str(value)

    @property
    def hypnogram(self) -> Hypnogram:
        """Stages (and snoring) as the engine's hypnogram, shown in the report's time zone."""
        return self.session.hypnogram(self.timezone, self.model_version)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class SleepSession:
    """One entry of the session list (``GET /data/v1/sessions``)."""

    session_id: str
    state: SessionState
    session_start_time: datetime
    session_end_time: datetime | None
    created_timezone: str
    unexpected_end_time: datetime | None
    last_received_seq_num: int | None
    time_in_bed: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> SleepSession:
        d = _dict(data, "session")
        start = _time(d.get("session_start_time"))
        if start is None:
            raise ValueError("a listed session has no session_start_time")
        last = d.get("last_received_seq_num")
        tib = d.get("time_in_bed")
        return cls(
            session_id=str(d["session_id"]),
            state=SessionState(d.get("state", "OPEN")),
            session_start_time=start,
            session_end_time=_time(d.get("session_end_time")),
            created_timezone=str(d.get("created_timezone") or "UTC"),
            unexpected_end_time=_time(d.get("unexpected_end_time")),
            last_received_seq_num=None if last is None else int(last),
            time_in_bed=None if tib is None else int(tib),
            raw=dict(d),
        )


@dataclass(frozen=True)
class AverageReport:
    """Average statistics over a period (``GET /data/v1/users/{id}/average-stats``)."""

    timezone: str
    start_date: str
    end_date: str
    peculiarities: list[str]
    average_stats: dict[str, Any] | None
    never_slept_sessions: list[dict[str, Any]]
    slept_sessions: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any) -> AverageReport:
        d = _dict(data, "average report")
        period = _dict(d.get("period") or {}, "period")
        return cls(
            timezone=str(period.get("timezone") or "UTC"),
            start_date=str(period.get("start_date") or ""),
            end_date=str(period.get("end_date") or ""),
            peculiarities=[str(p) for p in d.get("peculiarities") or []],
            average_stats=d.get("average_stats"),
            never_slept_sessions=list(d.get("never_slept_sessions") or []),
            slept_sessions=list(d.get("slept_sessions") or []),
            raw=dict(d),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)
