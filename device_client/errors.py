"""Errors raised by the device SDK; every one derives from :class:`DeviceError`."""

from __future__ import annotations


class DeviceError(Exception):
    """Base class for errors raised by the device SDK (not the protocol module)."""


class InvalidBrokerUrl(DeviceError, ValueError):
    """A broker URL the SDK cannot use; ``url`` is the offending value without password."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(f"invalid broker URL {url!r}: {problem}")


class ConnectRefused(DeviceError):
    """The broker answered the connect with a refusal that retrying will not fix.

    Raised by :meth:`Device.start` and :meth:`Device.run_forever` when the very first
    connection attempt is refused for bad credentials, missing authorisation or a rejected
    client id. Refusals after a device has been running are logged and retried instead.
    """

    def __init__(self, device_id: str, username: str | None, reason: str, code: int) -> None:
        self.device_id = device_id
        self.username = username
        self.reason = reason
        self.code = code
        super().__init__(
            f"broker refused device {device_id!r} (username {username!r}): {reason} "
            f"(code {code}); check the username, password and broker ACL"
        )
