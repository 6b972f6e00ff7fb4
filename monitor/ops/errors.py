"""Errors of ops changes; every one derives from :class:`OpsError`."""

from __future__ import annotations

from monitor.errors import MonitorError


class OpsError(MonitorError):
    """Base class for errors raised by :mod:`monitor.ops`."""


class InvalidClassSetting(OpsError, ValueError):
    """A device class setting out of range; ``field`` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)
