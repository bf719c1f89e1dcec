"""User and session identifiers in the reference's shapes.

* user ids: ``G-20250115025029-vLErWBfQNtnfvgDccFOQ`` (creation time, 20 random letters);
* session ids: ``20250115025029_fvivn`` (creation time, 5 random lowercase letters / digits).
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime

__all__ = ["is_session_id", "is_user_id", "new_session_id", "new_user_id"]

_USER_RE = re.compile(r"^G-\d{14}-[A-Za-z]{20}$")
_SESSION_RE = re.compile(r"^\d{14}_[a-z0-9]{5}$")


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")


def new_user_id(now: datetime | None = None) -> str:
    letters = "".join(secrets.choice(string.ascii_letters) for _ in range(20))
    return f"G-{_stamp(now)}-{letters}"


def new_session_id(now: datetime | None = None) -> str:
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return f"{_stamp(now)}_{suffix}"


def is_user_id(value: str | None) -> bool:
    return bool(value) and _USER_RE.match(value or "") is not None


def is_session_id(value: str | None) -> bool:
    return bool(value) and _SESSION_RE.match(value or "") is not None
