"""Structured logging for the monitor: plain text for people, JSON lines for collectors."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from device_client.log_format import UtcTextFormatter
from device_client.log_throttle import LogThrottle

# Attributes every LogRecord has; anything else was passed via ``extra=`` and is data.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(UtcTextFormatter):
    """The shared text line, with ``extra=`` data appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extra:
            base += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return base


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """Log at most one line per key per ``period`` seconds, counting what was suppressed.

    Bad input from the network arrives at network speed; logging each one would turn a
    misbehaving device into a disk-filling log flood.
    """

    def __init__(self, logger: logging.Logger, period: float = 10.0) -> None:
        self._logger = logger
        self._throttle = LogThrottle(period)

    def warning(self, key: str, msg: str, *args: object) -> None:
        self._emit(logging.WARNING, key, msg, args, exc_info=False)

    def exception(self, key: str, msg: str, *args: object) -> None:
        """ERROR with the traceback of the exception being handled."""
        self._emit(logging.ERROR, key, msg, args, exc_info=True)

    def _emit(
        self, level: int, key: str, msg: str, args: tuple[object, ...], *, exc_info: bool
    ) -> None:
        if self._throttle.allow(key, time.monotonic()):
            line = msg + self._throttle.note(key)
            self._logger.log(level, line, *args, exc_info=exc_info)
