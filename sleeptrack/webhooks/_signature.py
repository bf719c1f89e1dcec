"""Webhook signatures: ``x-sleeptrack-signature: sha256=<hex>`` over ``<timestamp>.<body>``.

The secret is the key's webhook secret (``whsec_…``, printed by ``sleeptrack keys create``). Receivers
check it with :func:`verify_signature`; it needs only the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureError",
    "sign_payload",
    "verify_signature",
]

SIGNATURE_HEADER = "x-sleeptrack-signature"
TIMESTAMP_HEADER = "x-sleeptrack-timestamp"
#: Signatures older (or newer) than this are refused by :func:`verify_signature` by default.
DEFAULT_TOLERANCE = 300.0


class SignatureError(ValueError):
    """The webhook's signature is missing, malformed, wrong or too old."""


def sign_payload(secret: str, timestamp: int, body: bytes) -> str:
    """The value of ``x-sleeptrack-signature`` for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` signs ``body`` at ``timestamp`` with ``secret``.

    ``tolerance`` bounds the age of the timestamp in seconds (``None``: any age), which stops replays.
    """
    if not timestamp or not signature:
        raise SignatureError("the webhook has no x-sleeptrack-timestamp / x-sleeptrack-signature header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError(f"x-sleeptrack-timestamp is not a Unix time: {timestamp!r}") from None
    if tolerance is not None and abs((time.time() if now is None else now) - ts) > tolerance:
        raise SignatureError(f"the webhook's timestamp is more than {tolerance:g} s away from now")
    if not hmac.compare_digest(sign_payload(secret, ts, body), signature.strip()):
        raise SignatureError("the webhook's signature does not match (wrong secret or altered body)")
