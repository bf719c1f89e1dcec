"""Webhooks: V3 payloads, the outbox written with each result, the signed delivery with retries.

:func:`verify_signature` needs only the standard library (receivers and the SDK use it without the
server's dependencies); the outbox and the sender are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, sign_payload, verify_signature
from ._targets import callback_url_problem, delivery_problem, private_callbacks_allowed, set_private_callbacks_allowed

if TYPE_CHECKING:
    from ._outbox import (
        INFERENCE_COMPLETE,
        SESSION_COMPLETE,
        enqueue_webhook,
        inference_complete_payload,
        session_complete_payload,
    )
    from ._sender import Delivery, WebhookSender, backoff_delay

__all__ = [
    "INFERENCE_COMPLETE",
    "SESSION_COMPLETE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Delivery",
    "SignatureError",
    "WebhookSender",
    "backoff_delay",
    "callback_url_problem",
    "delivery_problem",
    "enqueue_webhook",
    "inference_complete_payload",
    "private_callbacks_allowed",
    "session_complete_payload",
    "set_private_callbacks_allowed",
    "sign_payload",
    "verify_signature",
]

_LAZY = {
    "INFERENCE_COMPLETE": "._outbox",
    "SESSION_COMPLETE": "._outbox",
    "enqueue_webhook": "._outbox",
    "inference_complete_payload": "._outbox",
    "session_complete_payload": "._outbox",
    "Delivery": "._sender",
    "WebhookSender": "._sender",
    "backoff_delay": "._sender",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
