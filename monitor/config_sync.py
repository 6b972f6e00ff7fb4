"""Configuration sync: what ops changed in the database, as commands for the engine and
the broker's retained config topics.

Ops write classes, interval overrides and maintenance to the database and bump a
version (``monitor.ops``); the service reads them (at start, on every version change,
at once after an API change) and hands them here. This unit keeps what it last applied
and says what must change, as data: the service carries the commands out (engine calls,
status republishing, config publishes). No I/O, no clock.

The retained config topics are reconciled too: the broker replays every retained config
when the monitor subscribes, and one the database does not want (left by an earlier
monitor or database, or unreadable) is rewritten or cleared; after warm-up, configs the
database wants that the broker never showed are pushed.

What is tracked per device is sparse on purpose: most devices have no override, no
maintenance and no pushed interval, and a million entries of None would cost ~100 bytes
per device.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Final, TypeVar

from device_client.protocol import ProtocolError, decode_config
from monitor.liveness.persisted import (
    DEVICE_CLASS,
    DEVICE_ID,
    IN_MAINTENANCE,
    OVERRIDE,
    PersistedDevice,
)
from monitor.liveness.policy import DEFAULT_CLASS, Policy
from monitor.state_rows import policy_from_class
from monitor.store.models import DeviceClass
from monitor.store.rows import StoredDevice

_V = TypeVar("_V")

# The default class's fields that settings (env, flags) may pin over the database's.
TIMING_SETTINGS: Final = ("grace", "missed_limit", "lost_after")


@dataclass(frozen=True, slots=True)
class DefaultTiming:
    """The default class's timing from settings; ``explicit`` names the fields the user
    gave (env or flags), which win over the stored default class."""

    grace: float
    missed_limit: int
    lost_after: float
    explicit: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """What one device's configuration asks of the engine and its config topic.

    ``class_name`` is always the stored class (setting it again is a no-op). The other
    changes are present only when they differ from what was last applied.
    """

    device_id: str
    class_name: str
    override_changed: bool = False
    override: float | None = None
    push_changed: bool = False
    push: float | None = None
    maintenance: bool | None = None  # None: unchanged


@dataclass(frozen=True, slots=True)
class ConfigPush:
    """Write ``interval`` to a device's retained config topic (None clears it)."""

    device_id: str
    interval: float | None
    action: str  # "cleared", "rewritten" or "pushed": what the count says


class ConfigSync:
    def __init__(self, defaults: DefaultTiming) -> None:
        self._defaults = defaults
        self.version: str | None = None
        self._overrides: dict[str, float] = {}
        self._maintenance: dict[str, bool] = {}
        self._pushed: dict[str, float] = {}  # interval on each config topic
        # Devices whose wanted config the broker has not shown yet, until warm-up ends;
        # None once reconciled.
        self._unseen: set[str] | None = None
        self.counts: Counter[str] = Counter()  # config topics cleared/rewritten/pushed

    def fresh(self) -> ConfigSync:
        """An empty sync with the same defaults: a start-up load fills it, and only a
        complete load replaces the one in use."""
        return ConfigSync(self._defaults)

    @property
    def overrides(self) -> Mapping[str, float]:
        """Interval overrides last applied (devices without one are absent)."""
        return self._overrides

    @property
    def maintenance(self) -> Mapping[str, bool]:
        return self._maintenance

    @property
    def pushed(self) -> Mapping[str, float]:
        """The interval on each device's retained config topic (absent: none)."""
        return self._pushed

    # ----------------------------------------------------------------- classes

    def policies(self, classes: Iterable[DeviceClass]) -> dict[str, Policy]:
        """The engine's policies: the stored classes, the default class from settings
        when none is stored, and timing settings given explicitly over the stored default
        (so ``CLAWBEAT_GRACE=...`` means what it says even on an old database). Only those
        fields: the rest of the default class follows the database, also when ops change
        it at run time (``clawbeat classes set default --lost-after``)."""
        d = self._defaults
        policies = {c.name: policy_from_class(c) for c in classes}
        policies.setdefault(
            DEFAULT_CLASS,
            Policy(grace=d.grace, missed_limit=d.missed_limit, lost_after=d.lost_after),
        )
        if d.explicit:
            base = policies[DEFAULT_CLASS]
            policies[DEFAULT_CLASS] = Policy(
                interval=base.interval,
                grace=d.grace if "grace" in d.explicit else base.grace,
                missed_limit=d.missed_limit if "missed_limit" in d.explicit else base.missed_limit,
                lost_after=d.lost_after if "lost_after" in d.explicit else base.lost_after,
            )
        return policies

    # ----------------------------------------------------------------- start-up

    def remember_persisted(
        self, rows: Iterable[PersistedDevice], by_class: dict[str, float | None]
    ) -> None:
        """Take in devices as loaded at start-up, chunk by chunk: the engine's load
        tuples (``liveness/persisted.py``).

        Most devices have no override, no maintenance and a class without an interval:
        those cost two tuple reads and a set lookup.
        """
        pushing = {name for name, interval in by_class.items() if interval is not None}
        for row in rows:
            override = row[OVERRIDE]
            class_name = row[DEVICE_CLASS]
            if override is None and not row[IN_MAINTENANCE] and class_name not in pushing:
                continue
            device_id = row[DEVICE_ID]
            if override is not None:
                self._overrides[device_id] = override
                self._pushed[device_id] = override
            else:
                interval = by_class[class_name] if class_name in pushing else None
                if interval is not None:
                    self._pushed[device_id] = interval
            if row[IN_MAINTENANCE]:
                self._maintenance[device_id] = True

    def loaded(self, version: str | None) -> None:
        """The start-up load is complete: its version is applied, and every config the
        database wants is unseen until the broker's replay shows it."""
        self.version = version
        self._unseen = set(self._pushed)

    # ----------------------------------------------------------------- changes

    def changes(
        self,
        classes: Iterable[DeviceClass],
        snapshots: Iterable[StoredDevice],
        known: Callable[[str], bool],
    ) -> Iterator[DeviceConfig]:
        """What each stored device the engine ``known``s needs, as last applied is
        updated (a generator: a million devices are never held as commands at once)."""
        by_class = {c.name: c.interval for c in classes}
        for snap in snapshots:
            if not known(snap.id):
                continue
            change = DeviceConfig(snap.id, snap.class_name)
            if self._overrides.get(snap.id) != snap.interval_override:
                _set_sparse(self._overrides, snap.id, snap.interval_override)
                change = replace(change, override_changed=True, override=snap.interval_override)
            wanted = wanted_interval(snap, by_class)
            if self._pushed.get(snap.id) != wanted:
                _set_sparse(self._pushed, snap.id, wanted)
                change = replace(change, push_changed=True, push=wanted)
            if self._maintenance.get(snap.id, False) != snap.in_maintenance:
                _set_sparse(self._maintenance, snap.id, snap.in_maintenance or None)
                change = replace(change, maintenance=snap.in_maintenance)
            yield change

    def forget(self, device_id: str) -> None:
        for table in (self._overrides, self._maintenance, self._pushed):
            table.pop(device_id, None)
        if self._unseen is not None:
            self._unseen.discard(device_id)

    # ----------------------------------------------------------------- config topics

    def held(self, device_id: str, payload: bytes) -> ConfigPush | None:
        """A retained config the broker replayed: the push that corrects it, if any."""
        if self._unseen is not None:
            self._unseen.discard(device_id)
        wanted = self._pushed.get(device_id)
        try:
            held: float | None = decode_config(payload).interval if payload else None
        except ProtocolError:
            held = math.nan  # equal to nothing: rewritten (or cleared)
        if held == wanted:
            return None
        action = "cleared" if wanted is None else "rewritten"
        self.counts[action] += 1
        return ConfigPush(device_id, wanted, action)

    @property
    def reconciling(self) -> bool:
        """Configs the broker has not shown yet are still waited for."""
        return self._unseen is not None

    def unseen(self) -> list[ConfigPush]:
        """Warm-up is over: the configs the database wants that the broker lacked.

        By now the broker has replayed what it retained (the replay follows the
        subscription, warm-up lasts at least an interval). A config pushed twice is
        harmless: the device is told the interval it already has.
        """
        unseen, self._unseen = self._unseen or set(), None
        pushes = [
            ConfigPush(device_id, self._pushed[device_id], "pushed")
            for device_id in unseen
            if self._pushed.get(device_id) is not None
        ]
        self.counts["pushed"] += len(pushes)
        return pushes


def wanted_interval(snap: StoredDevice, by_class: dict[str, float | None]) -> float | None:
    """The interval a device is told: its override, else its class's, else none."""
    if snap.interval_override is not None:
        return snap.interval_override
    return by_class.get(snap.class_name)


def _set_sparse(table: dict[str, _V], key: str, value: _V | None) -> None:
    """Store ``value``, or forget ``key`` when it is None (absent means None)."""
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
