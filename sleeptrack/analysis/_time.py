"""Time helpers: IANA time zones and the ISO-8601 format of the Data API."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["InvalidTimezoneError", "format_time", "parse_datetime", "parse_timezone"]


class InvalidTimezoneError(ValueError):
    """An unknown IANA time zone name (the Data API answers 400 "The invalid timezone is provided")."""


def parse_timezone(name: str) -> tzinfo:
    """Return the time zone called ``name`` ("UTC", "Asia/Seoul", …).

    Raises
    ------
    InvalidTimezoneError
        If ``name`` is not an IANA time zone name.
    """
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise InvalidTimezoneError(f"unknown time zone {name!r} (use an IANA name such as 'Asia/Seoul')") from exc


def parse_datetime(value: str, default_tz: tzinfo | None = None) -> datetime:
    """Parse an ISO-8601 time; a time without offset is taken in ``default_tz`` (an error if none given)."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 time: {value!r} (expected e.g. 2025-01-15T23:00:00+09:00)") from exc
    if parsed.tzinfo is None:
        if default_tz is None:
            raise ValueError(f"time {value!r} has no UTC offset; add one, e.g. {value}+00:00")
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed


def format_time(value: datetime, tz: tzinfo | None = None) -> str:
    """Format as the Data API does: ``2025-01-15T02:50:29+00:00`` (seconds, explicit offset)."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; attach a time zone first")
    if tz is not None:
        value = value.astimezone(tz)
    return value.isoformat(timespec="seconds")
