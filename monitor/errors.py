"""The monitor's base exception and its direct subclasses."""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of errors the monitor raises on purpose."""


class ConfigError(MonitorError):
    """A setting is invalid; the message says which and how to fix it."""
