"""Helpers for the OpenAPI documentation at ``/docs``: response examples in the reference's shape."""

from __future__ import annotations

from typing import Any

from ._errors import Detail

__all__ = ["error_examples", "example"]

_COMMON: dict[int, list[str]] = {
    401: [Detail.UNAUTHORIZED],
    403: [Detail.PLAN_EXPIRED, Detail.RATE_LIMIT, Detail.QUOTA],
}


def example(body: Any, description: str = "Success") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": body}}}


def error_examples(*specs: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries: a bare status code gets the common details, ``(code, detail)`` adds one."""
    details: dict[int, list[str]] = {}
    for spec in specs:
        if isinstance(spec, int):
            details.setdefault(spec, []).extend(_COMMON.get(spec, []))
        else:
            details.setdefault(spec[0], []).append(spec[1])
    out: dict[int | str, dict[str, Any]] = {}
    for code, messages in details.items():
        examples = {m: {"value": {"detail": m, "result": None}} for m in messages}
        out[code] = {
            "description": " / ".join(messages),
            "content": {"application/json": {"examples": examples}},
        }
    return out
