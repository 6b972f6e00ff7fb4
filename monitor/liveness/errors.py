"""Errors raised by the liveness engine (one base class, structured subclasses)."""

from __future__ import annotations


class LivenessError(Exception):
    """Base class for everything the liveness package raises."""


class UnknownDevice(LivenessError, KeyError):
    """An ops command named a device the engine does not track."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(device_id)

    def __str__(self) -> str:
        return f"unknown device {self.device_id!r}"


class InvalidPolicy(LivenessError, ValueError):
    """A timing setting out of range; ``field`` names it."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class IllegalTransition(LivenessError):
    """The engine tried a state change that the transition table does not allow.

    Always a bug in the engine, never bad input: it is raised so the bug is loud.
    """

    def __init__(self, device_id: str, old: object, new: object, reason: object) -> None:
        self.device_id = device_id
        self.old = old
        self.new = new
        self.reason = reason
        super().__init__(f"{device_id}: {old} -> {new} ({reason}) is not an allowed transition")
