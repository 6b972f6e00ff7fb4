"""The one exception type the broker tooling raises."""

from __future__ import annotations


class BrokerToolError(RuntimeError):
    """A broker tooling step failed; the message says what to do about it."""
