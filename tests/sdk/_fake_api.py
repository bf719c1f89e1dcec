"""An in-memory double of the Session / Users / Data API for the SDK's unit tests, served through
``httpx.MockTransport`` (the end-to-end tests use the real server). It follows SESSION_API.md: status codes,
``detail`` messages, duplicate uploads, 409 with the open session, close with ``unexpected``.

Faults are injected per request with :meth:`FakeApi.inject` (a status answer, a transport exception, a delay).
"""

from __future__ import annotations

import json
import random
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

API_KEY = "sk_test_unit"


@dataclass
class FakeSession:
    session_id: str
    user_id: str
    start: datetime
    inference_type: str
    callback_url: str | None
    state: str = "OPEN"
    end: datetime | None = None
    unexpected_end: datetime | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # seq_nums in the order they were first stored
    uploads: int = 0  # upload requests, duplicates included


Fault = Callable[[httpx.Request], httpx.Response | None]


class FakeApi:
    def __init__(self) -> None:
        self.users: set[str] = set()
        self.sessions: dict[str, FakeSession] = {}
        self.requests: list[httpx.Request] = []
        self.faults: list[tuple[str, Fault]] = []
        self.lock = threading.Lock()
        self.stages: Callable[[int], list[int]] = lambda n: [1] * n

    # --------------------------------------------------------------------------------------- faults
    def inject(self, path_part: str, fault: Fault, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path contains ``path_part`` with ``fault``."""
        for _ in range(times):
            self.faults.append((path_part, fault))

    @staticmethod
    def status(code: int, detail: str, headers: dict[str, str] | None = None) -> Fault:
        return lambda _r: httpx.Response(code, json={"detail": detail}, headers=headers)

    @staticmethod
    def raises(exc: type[httpx.TransportError]) -> Fault:
        def fault(request: httpx.Request) -> httpx.Response | None:
            raise exc("injected", request=request)

        return fault

    # -------------------------------------------------------------------------------------- helpers
    def user(self) -> str:
        uid = "G-20250115025029-" + "".join(random.choices(string.ascii_letters, k=20))
        self.users.add(uid)
        return uid

    def only_session(self) -> FakeSession:
        assert len(self.sessions) == 1, list(self.sessions)
        return next(iter(self.sessions.values()))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -------------------------------------------------------------------------------------- routing
    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        with self.lock:
            self.requests.append(request)
            fault: Fault | None = None
            for i, (part, candidate) in enumerate(self.faults):
                if part in request.url.path:
                    del self.faults[i]
                    fault = candidate
                    break
        if fault is not None:
            answer = fault(request)
            if answer is not None:
                return answer
        with self.lock:
            return self._route(request)

    @staticmethod
    def _ok(result: Any, status: int = 200) -> httpx.Response:
        return httpx.Response(status, json={"detail": "success", "result": result})

    @staticmethod
    def _err(status: int, detail: str, result: Any = None) -> httpx.Response:
        body: dict[str, Any] = {"detail": detail}
        if result is not None:
            body["result"] = result
        return httpx.Response(status, json=body)

    def _route(self, r: httpx.Request) -> httpx.Response:
        if r.headers.get("x-api-key") != API_KEY:
            return self._err(401, "Unauthorized")
        path = r.url.path
        parts = path.strip("/").split("/")
        if path == "/ai/v1/users" and r.method == "POST":
            return self._ok({"user_id": self.user()}, 201)
        if parts[:3] == ["ai", "v1", "users"] and len(parts) == 4:
            uid = parts[3]
            if uid not in self.users:
                return self._err(404, "user does not exist")
            if r.method == "DELETE":
                self.users.discard(uid)
                return httpx.Response(204)
            return self._ok({"user_id": uid, "to_be_deleted": False, "last_session_info": None})
        if parts[:3] == ["data", "v1", "users"] and parts[-1] == "average-stats":
            return self._ok(
                {
                    "period": {"timezone": "UTC", **dict(r.url.params)},
                    "peculiarities": [],
                    "average_stats": None,
                    "never_slept_sessions": [],
                    "slept_sessions": [],
                }
            )
        uid = r.headers.get("x-user-id")
        if uid not in self.users:
            return self._err(404, "user does not exist")
        if path == "/ai/v1/sessions" and r.method == "POST":
            return self._create(uid, json.loads(r.content))
        if path == "/ai/v1/sessions/open":
            open_ = [s for s in self.sessions.values() if s.user_id == uid and s.state == "OPEN"]
            if not open_:
                return self._err(404, "session does not exist.")
            s = open_[0]
            return self._ok(
                {
                    "session_id": s.session_id,
                    "last_seq_num": max(s.chunks, default=-1),
                    "received_seq_nums_count": len(s.chunks),
                    "inference_type": s.inference_type,
                }
            )
        if path == "/ai/v1/sessions" and r.method == "DELETE":
            for sid in [k for k, s in self.sessions.items() if s.user_id == uid]:
                del self.sessions[sid]
            return httpx.Response(204)
        if parts[:3] == ["ai", "v1", "sessions"] and len(parts) >= 4:
            found = self.sessions.get(parts[3])
            if found is None or found.user_id != uid:
                return self._err(404, "session does not exist.")
            s = found
            if len(parts) == 4 and r.method == "DELETE":
                del self.sessions[s.session_id]
                return httpx.Response(204)
            if parts[4] == "upload":
                return self._upload(s, r)
            if parts[4] == "close":
                return self._close(s, json.loads(r.content or b"{}"))
        if parts[:3] == ["data", "v3", "sessions"]:
            found = self.sessions.get(parts[3])
            if found is None or found.user_id != uid:
                return self._err(404, f"Unable to find the sleep session of id {parts[3]}")
            return self._ok(self._report(found))
        if path == "/data/v1/sessions":
            items = [self._listing(s) for s in self.sessions.values() if s.user_id == uid]
            return self._ok({"timezone": "UTC", "sleep_session_list": items})
        return self._err(404, "Not Found")

    def _create(self, uid: str, body: dict[str, Any]) -> httpx.Response:
        for s in self.sessions.values():
            if s.user_id == uid and s.state == "OPEN":
                return self._err(409, "previous sleep session is not closed yet", {"session_id": s.session_id})
        start = datetime.now(UTC).replace(microsecond=0)
        sid = start.strftime("%Y%m%d%H%M%S_") + "".join(random.choices(string.ascii_lowercase, k=5))
        self.sessions[sid] = FakeSession(
            sid, uid, start, body.get("inference_type") or "MELSPECTROGRAM", body.get("callback_url")
        )
        return self._ok({"session_id": sid, "state": "OPEN", "session_start_time": start.isoformat()}, 201)

    def _upload(self, s: FakeSession, r: httpx.Request) -> httpx.Response:
        if s.state != "OPEN":
            return self._err(403, "the sleep session is already closed")
        seq, payload = _multipart(r)
        if seq < 0:
            return self._err(422, "Invalid seq_num (seq_num starts from 0)")
        s.uploads += 1
        duplicate = seq in s.chunks
        if not duplicate:
            s.chunks[seq] = payload
            s.order.append(seq)
        return self._ok({"session_id": s.session_id, "seq_num": seq, "duplicate": duplicate})

    def _close(self, s: FakeSession, body: dict[str, Any]) -> httpx.Response:
        if s.state != "OPEN":
            return self._err(403, "the sleep session is already closed")
        if body.get("unexpected"):
            s.end = s.start + timedelta(seconds=30 * (max(s.chunks, default=-1) + 1))
            s.unexpected_end = datetime.now(UTC)
        elif body.get("session_end_time"):
            end = datetime.fromisoformat(body["session_end_time"])
            if end <= s.start:
                return self._err(400, "[WARNING] Invalid session end time.")
            s.end = end
        else:
            s.end = datetime.now(UTC)
        s.state = "COMPLETE"
        return self._ok({"session_id": s.session_id, "state": "CLOSED"})

    def _report(self, s: FakeSession) -> dict[str, Any]:
        n = max(s.chunks, default=-1) + 1
        stages = [st if i in s.chunks else -1 for i, st in enumerate(self.stages(n))]
        return {
            "timezone": "UTC",
            "peculiarities": ["IN_PROGRESS"] if s.state != "COMPLETE" else [],
            "missing_data_ratio": 0.0,
            "session": {
                "id": s.session_id,
                "state": s.state,
                "start_time": s.start.isoformat(),
                "end_time": s.end.isoformat() if s.end else None,
                "unexpected_end_time": s.unexpected_end.isoformat() if s.unexpected_end else None,
                "created_timezone": "UTC",
                "sleep_stages": stages,
                "snoring_stages": [0] * n,
            },
            "stat": {"time_in_bed": 30 * n, "sleep_efficiency": 0.9} if s.state == "COMPLETE" else None,
        }

    @staticmethod
    def _listing(s: FakeSession) -> dict[str, Any]:
        return {
            "session_id": s.session_id,
            "state": s.state,
            "session_start_time": s.start.isoformat(),
            "session_end_time": s.end.isoformat() if s.end else None,
            "created_timezone": "UTC",
            "unexpected_end_time": None,
            "last_received_seq_num": max(s.chunks, default=None),
            "time_in_bed": None,
        }


def _multipart(request: httpx.Request) -> tuple[int, bytes]:
    """seq_num and file bytes of a multipart upload (enough of RFC 7578 for httpx's encoder)."""
    ctype = request.headers["content-type"]
    boundary = ctype.split("boundary=")[1].encode()
    seq = -1
    payload = b""
    for part in request.content.split(b"--" + boundary):
        if b"\r\n\r\n" not in part:
            continue
        head, _, body = part.partition(b"\r\n\r\n")
        body = body[:-2] if body.endswith(b"\r\n") else body
        if b'name="seq_num"' in head:
            seq = int(body)
        elif b'name="file"' in head:
            payload = body
    return seq, payload


def slow(seconds: float) -> Fault:
    """A fault that only delays the request (then it is answered normally)."""

    def fault(_request: httpx.Request) -> None:
        time.sleep(seconds)

    return fault
