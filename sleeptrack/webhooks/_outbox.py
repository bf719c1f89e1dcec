"""Webhook payloads (version V3, as in the reference's examples) and the outbox they are written to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from sleeptrack.store import SleepSession, Webhook, utcnow

__all__ = [
    "INFERENCE_COMPLETE",
    "SESSION_COMPLETE",
    "enqueue_webhook",
    "inference_complete_payload",
    "session_complete_payload",
]

INFERENCE_COMPLETE = "INFERENCE_COMPLETE"
SESSION_COMPLETE = "SESSION_COMPLETE"
VERSION = "V3"
#: Real-time webhooks carry the stages of the last 20 minutes (4 inferences of 10 epochs).
WINDOW_EPOCHS = 40


def inference_complete_payload(
    user_id: str,
    session_id: str,
    seq_num: int,
    sleep_stages: list[int],
    snoring_stages: list[int] | None,
) -> dict[str, Any]:
    """INFERENCE_COMPLETE after upload ``seq_num``; stages are the whole causal result so far."""
    inference_seq_num = (seq_num + 1) // 10 - 1
    start = max(0, len(sleep_stages) - WINDOW_EPOCHS)
    return {
        "event": INFERENCE_COMPLETE,
        "version": VERSION,
        "data": {
            "user_id": user_id,
            "session_id": session_id,
            "seq_num": seq_num,
            "inference_seq_num": inference_seq_num,
            "sleep_stages": sleep_stages[start:],
            "breath_stages": None,
            "snoring_stages": None if snoring_stages is None else snoring_stages[start:],
        },
    }


def session_complete_payload(user_id: str, document: dict[str, Any]) -> dict[str, Any]:
    """SESSION_COMPLETE: the Data API's session document with ``user_id`` added."""
    data: dict[str, Any] = {}
    for key, value in document.items():
        data[key] = value
        if key == "missing_data_ratio":
            data["user_id"] = user_id
    data.setdefault("user_id", user_id)
    return {"event": SESSION_COMPLETE, "version": VERSION, "data": data}


def enqueue_webhook(db: Session, s: SleepSession, payload: dict[str, Any]) -> Webhook | None:
    """Add the webhook to the outbox of ``db``'s transaction, if the session has a callback URL."""
    if not s.callback_url:
        return None
    now = utcnow()
    row = Webhook(
        session_id=s.id,
        environment_id=s.environment_id,
        api_key_id=s.callback_key_id,
        api_key_enc=s.callback_key_enc,
        user_id=s.user_id,
        url=s.callback_url,
        event=str(payload["event"]),
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.add(row)
    return row
