"""Structured logs: one JSON object per line (or plain text), never a secret.

API keys never reach a log record: requests are logged by method, path and status only, and webhook
headers are not logged.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in ("color_message",):
                out[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO", plain: bool = False) -> dict[str, Any]:
    """Configure the root logger; returns the dict config uvicorn should use (same handlers)."""
    formatter: dict[str, Any] = (
        {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
        if plain
        else {"()": "sleeptrack._logging.JsonFormatter"}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "httpx": {"level": "WARNING"},
            "alembic": {"level": "WARNING"},
            # SQLAlchemy logs every statement at INFO: never wanted in a service log.
            "sqlalchemy": {"level": "WARNING"},
        },
    }
    logging.config.dictConfig(config)
    return config
