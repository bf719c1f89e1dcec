"""Hardening of the API's entrance: ambiguous identity headers refused; the answers' schema in the OpenAPI document.

Refuse requests whose identity headers are ambiguous, before any handler sees them.

HTTP allows a header to be repeated; frameworks then pick the first or the last value, and a proxy in
front may pick the other one. A request carrying two different ``x-api-key``, ``x-user-id`` or
``timezone`` values is refused with the documented error of that header (the same values repeated are
harmless and pass).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from sleeptrack.webhooks._targets import request_policy

from ._errors import Detail
from ._middleware import _send_error

__all__ = ["ANSWER_SCHEMA", "HeaderGuardMiddleware", "install_answer_schema"]


def _errors(path: str) -> dict[bytes, tuple[int, str]]:
    data_api = path.startswith("/data/")
    return {
        b"x-api-key": (401, Detail.UNAUTHORIZED),
        b"x-user-id": (400, Detail.X_USER_ID_FORMAT) if data_api else (401, Detail.X_USER_ID_INVALID),
        b"timezone": (400, Detail.INVALID_TIMEZONE),
    }


class HeaderGuardMiddleware:
    """Also sets, for each request, the app's callback policy (``allow_private_callbacks`` of its settings)."""

    def __init__(self, app: ASGIApp, allow_private_callbacks: bool = False) -> None:
        self.app = app
        self.allow_private_callbacks = allow_private_callbacks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = request_policy.set(self.allow_private_callbacks)
        try:
            await self._guarded(scope, receive, send)
        finally:
            request_policy.reset(token)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen: dict[bytes, bytes] = {}
            for name, value in scope.get("headers", ()):
                if name in (b"x-api-key", b"x-user-id", b"timezone"):
                    if name in seen and seen[name].strip() != value.strip():
                        status, detail = _errors(str(scope.get("path", "")))[name]
                        await _send_error(send, status, detail)
                        return
                    seen[name] = value
        await self.app(scope, receive, send)


#: Every JSON answer of the API, success or error: ``{"detail": <message>, "result": <anything>}``.
ANSWER_SCHEMA: dict[str, Any] = {
    "title": "Answer",
    "type": "object",
    "required": ["detail", "result"],
    "properties": {
        "detail": {"type": "string", "description": '"success", or the error\'s documented message'},
        "result": {"description": "The answer's data (null for most errors)"},
    },
}


def _with_path(paths: dict[str, Any], path: str, operations: dict[str, Any]) -> dict[str, Any]:
    family = "/".join(path.split("/")[:4])
    items = list(paths.items())
    at = max((i + 1 for i, (p, _) in enumerate(items) if p.startswith(family)), default=len(items))
    return dict([*items[:at], (path, operations), *items[at:]])


def install_answer_schema(app: FastAPI, extra_paths: dict[str, dict[str, Any]] | None = None) -> None:
    """Give every documented JSON answer of the OpenAPI document the envelope's schema.

    ``extra_paths``: operations of routes FastAPI does not see (plain Starlette routes), by path and
    method; each is placed after the last path sharing its first three segments.

    The routes document their answers by examples; this makes the shape checkable (the fuzz tests
    validate every answer against it) and replaces FastAPI's default 422 schema, which is not what the
    API answers (``{"detail": "Invalid parameter", "result": {"errors": [...]}}``).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Answer"] = ANSWER_SCHEMA
        for extra, operations in (extra_paths or {}).items():
            schema["paths"] = _with_path(schema.get("paths", {}), extra, operations)
        metrics = schema.get("paths", {}).get("/metrics", {}).get("get")
        if metrics is not None:  # Prometheus' text format, not JSON
            metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(("/ai/", "/data/")):
                continue
            for operation in operations.values():
                for answer in operation.get("responses", {}).values():
                    content = answer.get("content", {}).get("application/json")
                    if content is not None:
                        content["schema"] = {"$ref": "#/components/schemas/Answer"}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
