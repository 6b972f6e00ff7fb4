"""Errors raised by ``monitor.alerts``.

Everything derives from :class:`AlertingError`, itself a :class:`MonitorError`, so the
``clawbeat`` command reports them as one-line errors. apprise's failures are translated
at the boundary (:mod:`monitor.alerts.notifier`) into :class:`DeliveryFailed`.
"""

from __future__ import annotations

from monitor.errors import MonitorError


class AlertingError(MonitorError):
    """Base class of every error raised by the alerting package."""


class InvalidChannelUrl(AlertingError):
    """apprise does not understand a channel URL (the URL itself is never repeated)."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"channel {name!r}: {problem}")


class ChannelNotFound(AlertingError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no channel {name!r}")


class ChannelExists(AlertingError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"channel {name!r} already exists (remove it first, or pass --replace)")


class RuleNotFound(AlertingError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no alert rule {name!r}")


class InvalidRule(AlertingError):
    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"alert rule {name!r}: {problem}")


class AlertNotFound(AlertingError):
    def __init__(self, alert_id: int) -> None:
        self.alert_id = alert_id
        super().__init__(f"no alert #{alert_id}")


class AlreadyAcknowledged(AlertingError):
    def __init__(self, alert_id: int, by: str | None) -> None:
        self.alert_id = alert_id
        self.by = by
        super().__init__(f"alert #{alert_id} was already acknowledged by {by or 'someone'}")


class WindowNotFound(AlertingError):
    def __init__(self, window_id: int, what: str = "maintenance window") -> None:
        self.window_id = window_id
        super().__init__(f"no {what} #{window_id}")


class InvalidSchedule(AlertingError):
    """A maintenance window, mute or duration that cannot be understood."""

    def __init__(self, problem: str, *, field: str) -> None:
        self.problem = problem
        self.field = field
        super().__init__(f"{field}: {problem}")


class DeliveryFailed(AlertingError):
    """A notification could not be handed to its channel; ``retryable`` says whether to retry."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        super().__init__(message)
