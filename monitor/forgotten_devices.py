"""Devices ops forgot (``clawbeat devices forget``), as the running monitor keeps them.

The tombstones live in the database (``forgotten_devices``, written by
:mod:`monitor.ops.forget`); this holds the monitor's copy. While a device is forgotten,
a *retained* heartbeat or presence of it (the broker replaying what it kept, e.g. at the
monitor's start) is cleared on the broker instead of registering the device again. A
*fresh* message means the device is alive: it registers as a new device and its
tombstone is removed.
"""

from __future__ import annotations

from collections.abc import Collection

from device_client.protocol import Topics


class ForgottenDevices:
    def __init__(self, topics: Topics) -> None:
        self._topics = topics
        self._ids: set[str] = set()
        # Heard alive, tombstone not deleted from the database yet.
        self._revived: set[str] = set()
        self.cleared = 0
        """Retained messages cleared since start."""

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> list[str]:
        return sorted(self._ids)

    def update(self, stored: Collection[str]) -> set[str]:
        """The tombstones the database holds now; returns those new to this monitor."""
        current = set(stored) - self._revived
        new = current - self._ids
        self._ids = current
        return new

    def revived(self, device_id: str) -> None:
        self._ids.discard(device_id)
        self._revived.add(device_id)

    def take_revived(self) -> set[str]:
        """Tombstones to delete from the database (give them back with :meth:`keep`)."""
        revived, self._revived = self._revived, set()
        return revived

    def keep(self, revived: Collection[str]) -> None:
        """Deleting them failed (the database is down): try again later."""
        self._revived.update(revived)

    def retained_topics(self, device_id: str) -> tuple[str, ...]:
        """Every topic the broker may retain for the device: the device's and the monitor's."""
        t = self._topics
        return (
            t.heartbeat(device_id),
            t.presence(device_id),
            t.status(device_id),
            t.config(device_id),
        )
