"""Structured logs: one JSON object per line on stderr (time, level, event, fields).

Callers pass an event name and fields; IP addresses are never passed in, so none reach a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any, TextIO

import msgspec

_encoder = msgspec.json.Encoder()
_LOGGER = logging.getLogger("openpanel")
_STD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats stdlib records as JSON lines; extra={"fields": {...}} adds fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        if getattr(record, "event", None) and record.args:
            out["message"] = record.getMessage()
        if record.name != "openpanel":
            out["logger"] = record.name
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        for key, value in record.__dict__.items():
            if key not in _STD_ATTRS and key not in ("event", "fields") and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return _encoder.encode(out).decode("utf-8", "replace")


def setup(level: str = "info", stream: TextIO | None = None) -> None:
    """Route every logger (ours, granian's, litestar's) to JSON lines on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs would record client addresses; they stay off.
    for name in ("_granian", "granian", "granian.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def log(event: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log one event with fields, e.g. log("server_ready", url=...)."""
    _LOGGER.log(level, event, extra={"event": event, "fields": fields})


def warn(event: str, /, **fields: Any) -> None:
    log(event, logging.WARNING, **fields)


def error(event: str, /, **fields: Any) -> None:
    log(event, logging.ERROR, **fields)
