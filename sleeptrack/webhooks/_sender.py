"""Delivery of the outbox: a background sender with retries and exponential backoff.

Rows are claimed with a lease (``next_attempt_at`` moved past the request timeout) so several server
processes can share one outbox; webhooks of one session go out in order. A receiver that is down
delays only its own webhooks: analysis never waits for delivery, and nothing is lost on restart
(undelivered rows stay ``pending`` in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import func, select

import sleeptrack
from sleeptrack.store import ApiKey, Stores, Webhook, decrypt_secret, utcnow, webhook_secret

from ._signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_payload
from ._targets import delivery_problem

__all__ = ["MAX_RESPONSE_BYTES", "Delivery", "WebhookSender", "backoff_delay"]

log = logging.getLogger("sleeptrack.webhooks")

#: At most this much of a receiver's answer is read (the rest is dropped with the connection).
MAX_RESPONSE_BYTES = 64 * 1024


class _StoppedError(Exception):
    """The delivery was stopped by the sender (target not allowed, answer too slow or too large)."""


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``attempts`` failed ones: base, 2·base, 4·base, … up to ``cap``."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass
class Delivery:
    """One try of one webhook, as reported to listeners."""

    webhook_id: int
    event: str
    url: str
    ok: bool
    status_code: int | None
    error: str | None
    attempts: int
    final: bool
    seconds: float


@dataclass
class _Claimed:
    id: int
    session_id: str | None
    url: str
    event: str
    payload: dict[str, object]
    user_id: str
    api_key_enc: bytes | None
    key_hash: str | None
    attempts: int


class WebhookSender:
    """Sends due outbox rows from a background thread; :meth:`wake` when new rows were committed."""

    def __init__(
        self,
        stores: Stores,
        *,
        timeout: float = 10.0,
        max_attempts: int = 12,
        backoff: float = 2.0,
        backoff_max: float = 3600.0,
        concurrency: int = 8,
        poll_interval: float = 2.0,
        batch: int = 200,
        allow_private: bool | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.stores = stores
        #: Every delivery ends within ``timeout`` seconds (connect, send, answer), however the receiver behaves.
        self.timeout = timeout
        #: None: the process-wide policy (``SLEEPTRACK_ALLOW_PRIVATE_CALLBACKS``); see ``_targets``.
        self.allow_private = allow_private
        self.max_response_bytes = max_response_bytes
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.batch = batch
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook")
        # Deliveries run on one event loop of their own so that a whole delivery (connect, send, answer)
        # can be cut at ``timeout`` seconds, which per-read timeouts alone do not do (a receiver
        # dribbling its answer byte by byte would hold a sender thread for ever).
        self._io = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._io.run_forever, name="webhook-io", daemon=True)
        self._loop_thread.start()
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency),
            headers={"user-agent": f"sleeptrack/{sleeptrack.__version__}"},
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[Delivery], None]] = []

    def add_listener(self, listener: Callable[[Delivery], None]) -> None:
        self._listeners.append(listener)

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
            self._thread = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._io.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._client.aclose(), self._io).result(timeout=5)
            self._io.call_soon_threadsafe(self._io.stop)
            self._loop_thread.join(timeout=5)
        if not self._io.is_running():
            self._io.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.deliver_due()
            except Exception:
                log.exception("webhook sender pass failed; retrying")
                sent = 0
            if sent:
                continue
            self._wake.wait(self._idle_wait())
            self._wake.clear()

    def _idle_wait(self) -> float:
        try:
            with self.stores.db.read() as s:
                due = s.scalar(select(func.min(Webhook.next_attempt_at)).where(Webhook.status == "pending"))
        except Exception:
            return self.poll_interval
        if due is None:
            return self.poll_interval
        return max(0.01, min(self.poll_interval, (due - utcnow()).total_seconds()))

    def pending(self) -> int:
        with self.stores.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(Webhook).where(Webhook.status == "pending")) or 0)

    # ----------------------------------------------------------------------------------- delivery
    def _claim(self) -> list[_Claimed]:
        db = self.stores.db
        now = utcnow()
        with db.write() as s:
            query = (
                select(Webhook, ApiKey.key_hash)
                .outerjoin(ApiKey, Webhook.api_key_id == ApiKey.id)
                .where(Webhook.status == "pending", Webhook.next_attempt_at <= now)
                .order_by(Webhook.id)
                .limit(self.batch)
            )
            if not db.is_sqlite:
                query = query.with_for_update(of=Webhook, skip_locked=True)
            claimed = []
            for row, key_hash in s.execute(query):
                row.next_attempt_at = now + timedelta(seconds=self.timeout + 30)
                claimed.append(
                    _Claimed(
                        row.id,
                        row.session_id,
                        row.url,
                        row.event,
                        dict(row.payload),
                        row.user_id,
                        row.api_key_enc,
                        key_hash,
                        row.attempts,
                    )
                )
        return claimed

    def deliver_due(self) -> int:
        """Try every due webhook once (webhooks of one session in order); returns how many were tried.

        The outcomes are recorded together, in one transaction: under an ingest burst every write
        transaction waits its turn with the uploads' group commits, and an fsync apiece would slow them.
        """
        claimed = self._claim()
        if not claimed:
            return 0
        groups: dict[str | None, list[_Claimed]] = defaultdict(list)
        for c in claimed:
            groups[c.session_id].append(c)
        futures = [self._pool.submit(self._send_group, group) for group in groups.values()]
        sent = [pair for f in futures for pair in f.result()]
        self._record(sent)
        for _, delivery in sent:
            for listener in self._listeners:
                try:
                    listener(delivery)
                except Exception:
                    log.exception("webhook listener failed")
        return len(claimed)

    def _send_group(self, group: list[_Claimed]) -> list[tuple[_Claimed, Delivery]]:
        return [(c, self._send(c)) for c in group]

    def _send(self, c: _Claimed) -> Delivery:
        body = json.dumps(c.payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "x-user-id": c.user_id,
            "x-sleeptrack-event": c.event,
            "x-sleeptrack-delivery": str(c.id),
            TIMESTAMP_HEADER: str(timestamp),
        }
        secret = self.stores.secret
        if c.api_key_enc is not None:
            key = decrypt_secret(secret, c.api_key_enc)
            if key is not None:
                headers["x-api-key"] = key
        if c.key_hash is not None:
            headers[SIGNATURE_HEADER] = sign_payload(webhook_secret(secret, c.key_hash), timestamp, body)
        attempts = c.attempts + 1
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        refused = delivery_problem(c.url, self.allow_private)
        if refused is not None:
            log.warning("webhook %s not sent: callback URL refused (%s)", c.id, refused)
            return Delivery(c.id, c.event, c.url, False, None, f"refused: {refused}", attempts, True, 0.0)
        try:
            status = self._post(c.url, body, headers)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (httpx.HTTPError, _StoppedError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = error is None
        final = ok or attempts >= self.max_attempts
        return Delivery(c.id, c.event, c.url, ok, status, error, attempts, final, time.perf_counter() - started)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the status: at most ``max_response_bytes`` of the answer read, all within ``timeout``."""
        future = asyncio.run_coroutine_threadsafe(self._apost(url, body, headers), self._io)
        return future.result()

    async def _apost(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client.stream("POST", url, content=body, headers=headers) as response:
                    received = 0
                    async for chunk in response.aiter_raw(16 * 1024):
                        received += len(chunk)
                        if received > self.max_response_bytes:
                            break  # enough: the status is known, the rest is dropped with the connection
                    return response.status_code
        except TimeoutError:
            raise _StoppedError(f"no complete answer within {self.timeout:g} s") from None

    def _record(self, sent: list[tuple[_Claimed, Delivery]]) -> None:
        now = utcnow()
        with self.stores.db.write() as s:
            rows = {row.id: row for row in s.scalars(select(Webhook).where(Webhook.id.in_([c.id for c, _ in sent])))}
            for c, d in sent:
                row = rows.get(c.id)
                if row is None:  # its session was deleted meanwhile
                    continue
                row.attempts = d.attempts
                row.last_status_code = d.status_code
                row.last_error = d.error
                if d.ok:
                    row.status = "delivered"
                    row.delivered_at = now
                elif d.final:
                    row.status = "failed"
                    log.warning("webhook %s to %s given up after %d attempts: %s", c.id, c.url, d.attempts, d.error)
                else:
                    delay = backoff_delay(d.attempts, self.backoff, self.backoff_max)
                    row.next_attempt_at = now + timedelta(seconds=delay)
                    log.info("webhook %s to %s failed (%s); retry in %.0f s", c.id, c.url, d.error, delay)
