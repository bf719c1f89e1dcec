"""Dashboard security: password hashes, the signed session cookie, CSRF tokens and sign-in rate limits.

* Passwords: argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile); hashes are upgraded on sign-in
  when the parameters change. Unknown e-mails still cost one hash verification (no timing oracle).
* Session: one cookie, ``sleeptrack_dash``, holding ``{account id, password fingerprint, CSRF token,
  environment}`` signed with a key derived from the server secret (itsdangerous, HMAC-SHA256, timestamped;
  refused after ``max_age``). HttpOnly, SameSite=Lax, Secure when the request came over https. The password
  fingerprint (HMAC of the stored hash) makes every cookie of an account invalid once its password changes.
* CSRF: a random per-cookie token (also given to signed-out visitors, for the sign-in and sign-up forms);
  every POST must send it back in the ``csrf_token`` form field; compared in constant time.
* Sign-in rate limit: at most ``max_failures`` failed attempts per (e-mail, IP) and ``max_ip_failures`` per IP
  within ``window`` seconds; then 429 until the oldest failure leaves the window. Kept in process memory
  (per server process), which is what a single ``sleeptrack serve`` needs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from sleeptrack.store import normalize_email

__all__ = [
    "COOKIE_NAME",
    "MIN_PASSWORD_LENGTH",
    "CookieSession",
    "LoginLimiter",
    "Passwords",
    "SessionSigner",
    "csrf_matches",
    "derive_key",
    "new_password_errors",
    "normalize_email",
    "try_again_in",
    "validate_email",
    "validate_password",
]

COOKIE_NAME = "sleeptrack_dash"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def derive_key(server_secret: bytes, purpose: str) -> bytes:
    """A key for one purpose, so the dashboard never signs with the raw server secret."""
    return hmac.new(server_secret, b"sleeptrack-dashboard:" + purpose.encode(), hashlib.sha256).digest()


def validate_email(email: str) -> str | None:
    """An error message, or None when ``email`` looks like an address (the local@localhost account included)."""
    if not _EMAIL.match(email) or len(email) > 320:
        return "Enter a valid e-mail address."
    return None


def new_password_errors(password: str, repeated: str, email: str) -> dict[str, str]:
    """A new password's problems by form field (``password``, ``password2``); empty when it can be used."""
    errors = {}
    if message := validate_password(password, email):
        errors["password"] = message
    if password != repeated:
        errors["password2"] = "The two passwords differ."
    return errors


def try_again_in(seconds: int) -> str:
    """'Try again in N minute(s).' for a lockout's ``Retry-After``."""
    minutes = max(1, round(seconds / 60))
    return f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def validate_password(password: str, email: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    if password.strip().lower() == normalize_email(email):
        return "The password must not be your e-mail address."
    return None


class Passwords:
    """argon2id hashing with a dummy verification for unknown accounts."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        return str(self._hasher.hash(password))

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; always spends one verification, even without a stored hash."""
        try:
            return bool(self._hasher.verify(stored_hash or self._dummy, password)) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(stored_hash))
        except InvalidHashError:
            return True


@dataclass(frozen=True)
class CookieSession:
    """What the signed cookie holds; ``account_id`` None = signed out (the cookie still carries a CSRF token)."""

    csrf: str
    account_id: int | None = None
    fingerprint: str = ""
    environment: str = "test"

    @classmethod
    def anonymous(cls) -> CookieSession:
        return cls(csrf=secrets.token_urlsafe(32))

    def signed_in(self, account_id: int, fingerprint: str) -> CookieSession:
        # A fresh CSRF token at sign-in: a token seen before authentication is not reused after it.
        return replace(self, account_id=account_id, fingerprint=fingerprint, csrf=secrets.token_urlsafe(32))

    def with_environment(self, environment: str) -> CookieSession:
        return replace(self, environment=environment)


class SessionSigner:
    """Signs and verifies the session cookie."""

    def __init__(self, server_secret: bytes, max_age: int = 14 * 86400) -> None:
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(
            derive_key(server_secret, "session-cookie"), salt="sleeptrack-dashboard-session"
        )
        self._fingerprint_key = derive_key(server_secret, "password-fingerprint")

    def dumps(self, session: CookieSession) -> str:
        payload: dict[str, Any] = {"c": session.csrf, "e": session.environment}
        if session.account_id is not None:
            payload["a"] = session.account_id
            payload["f"] = session.fingerprint
        return str(self._serializer.dumps(payload))

    def loads(self, token: str | None) -> CookieSession | None:
        """The session of a valid, unexpired cookie; None for a missing, forged, expired or malformed one."""
        if not token:
            return None
        try:
            payload = self._serializer.loads(token, max_age=self.max_age)
        except BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(payload, dict):
            return None
        csrf, env = payload.get("c"), payload.get("e")
        account, fingerprint = payload.get("a"), payload.get("f", "")
        if not isinstance(csrf, str) or env not in ("live", "test"):
            return None
        if account is not None and (not isinstance(account, int) or not isinstance(fingerprint, str)):
            return None
        return CookieSession(csrf=csrf, account_id=account, fingerprint=fingerprint, environment=env)

    def fingerprint(self, account_id: int, password_hash: str | None) -> str:
        """Changes whenever the password hash changes: old cookies stop working."""
        msg = f"{account_id}:{password_hash or ''}".encode()
        return hmac.new(self._fingerprint_key, msg, hashlib.sha256).hexdigest()[:32]


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


class LoginLimiter:
    """Failed sign-ins per (e-mail, IP) and per IP in a sliding window."""

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 900.0,
        max_ip_failures: int = 50,
        clock: Any = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.max_ip_failures = max_ip_failures
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._by_pair: dict[tuple[str, str], deque[float]] = {}
        self._by_ip: dict[str, deque[float]] = {}

    def _prune(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def retry_after(self, email: str, ip: str) -> int:
        """Seconds until the next attempt is allowed (0 = allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for q, limit in (
                (self._by_pair.get((email, ip)), self.max_failures),
                (self._by_ip.get(ip), self.max_ip_failures),
            ):
                if q is None:
                    continue
                self._prune(q, now)
                if len(q) >= limit:
                    wait = max(wait, q[len(q) - limit] + self.window - now)
        return int(wait) + (1 if wait > int(wait) else 0)

    def failure(self, email: str, ip: str) -> None:
        now = self._clock()
        with self._lock:
            self._by_pair.setdefault((email, ip), deque()).append(now)
            self._by_ip.setdefault(ip, deque()).append(now)
            if len(self._by_pair) > 100_000:  # bound memory under a flood of distinct e-mails
                for key in [k for k, q in self._by_pair.items() if not q or q[-1] <= now - self.window]:
                    del self._by_pair[key]

    def success(self, email: str, ip: str) -> None:
        with self._lock:
            self._by_pair.pop((email, ip), None)
