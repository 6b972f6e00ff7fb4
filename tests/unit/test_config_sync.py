"""Config sync, step by step: stored configuration in, commands out, retained config
topics reconciled. Pure: no database, no broker."""

from __future__ import annotations

from datetime import UTC, datetime

from device_client.protocol import ConfigUpdate, encode_config
from monitor.config_sync import ConfigSync, DefaultTiming
from monitor.liveness.persisted import PersistedDevice
from monitor.liveness.policy import DEFAULT_CLASS
from monitor.store.models import DeviceClass
from monitor.store.rows import StoredDevice

T0 = datetime(2026, 12, 3, tzinfo=UTC)
DEFAULTS = DefaultTiming(grace=10.0, missed_limit=3, lost_after=86_400.0)


def stored(
    device_id: str,
    *,
    class_name: str = DEFAULT_CLASS,
    override: float | None = None,
    maintenance: bool = False,
) -> StoredDevice:
    return StoredDevice(
        id=device_id,
        state="online",
        since=T0,
        reason=None,
        session="s1",
        last_seq=1,
        last_seen=T0,
        announced_interval=30.0,
        interval_override=override,
        class_name=class_name,
        in_maintenance=maintenance,
    )


def persisted(stored: StoredDevice) -> PersistedDevice:
    """The start-up load's tuple of a stored device (times as the stream gives them)."""
    return (
        stored.id,
        stored.state,
        stored.since.timestamp(),
        stored.reason,
        stored.session,
        stored.last_seq,
        None if stored.last_seen is None else stored.last_seen.timestamp(),
        stored.announced_interval,
        stored.interval_override,
        stored.class_name,
        stored.in_maintenance,
        stored.clock_offset,
    )


def pump_class(interval: float | None) -> DeviceClass:
    return DeviceClass(
        name="pumps", interval=interval, grace=5.0, missed_limit=2, lost_after=None, description=""
    )


def test_a_start_up_load_remembers_only_what_is_configured() -> None:
    sync = ConfigSync(DEFAULTS)
    sync.remember_persisted(
        [
            persisted(stored("a", override=5.0)),
            persisted(stored("b", maintenance=True)),
            persisted(stored("c", class_name="pumps")),
        ],
        {"pumps": 20.0, DEFAULT_CLASS: None},
    )
    sync.loaded("v1")
    assert sync.version == "v1"
    assert sync.overrides == {"a": 5.0}
    assert sync.maintenance == {"b": True}
    assert sync.pushed == {"a": 5.0, "c": 20.0}
    assert sync.reconciling


def test_changes_say_only_what_differs_from_what_was_applied() -> None:
    sync = ConfigSync(DEFAULTS)
    sync.remember_persisted([persisted(stored("a")), persisted(stored("b"))], {})
    sync.loaded("v1")
    classes = [pump_class(15.0)]
    devices = [stored("a", override=5.0), stored("b", class_name="pumps", maintenance=True)]
    first = {c.device_id: c for c in sync.changes(classes, devices, known=lambda _: True)}
    assert (first["a"].override_changed, first["a"].override) == (True, 5.0)
    assert (first["a"].push_changed, first["a"].push) == (True, 5.0)
    assert first["a"].maintenance is None
    assert first["b"].class_name == "pumps"
    assert not first["b"].override_changed
    assert (first["b"].push_changed, first["b"].push) == (True, 15.0)  # the class's
    assert first["b"].maintenance is True
    # Applied once: the same configuration again asks for nothing but the class.
    again = list(sync.changes(classes, devices, known=lambda _: True))
    assert [(c.override_changed, c.push_changed, c.maintenance) for c in again] == [
        (False, False, None),
        (False, False, None),
    ]
    # Clearing the override falls back to nothing pushed (default class, no interval).
    cleared = next(iter(sync.changes(classes, [stored("a")], known=lambda _: True)))
    assert (cleared.override_changed, cleared.override) == (True, None)
    assert (cleared.push_changed, cleared.push) == (True, None)
    assert "a" not in sync.overrides  # sparse: absent, not None


def test_devices_the_engine_does_not_know_are_left_for_later() -> None:
    sync = ConfigSync(DEFAULTS)
    sync.loaded(None)
    assert list(sync.changes([], [stored("ghost", override=5.0)], known=lambda _: False)) == []
    # Nothing was recorded, so once the engine knows it the change still comes.
    (change,) = sync.changes([], [stored("ghost", override=5.0)], known=lambda _: True)
    assert change.override_changed


def test_retained_configs_are_reconciled_with_what_the_database_wants() -> None:
    sync = ConfigSync(DEFAULTS)
    sync.remember_persisted(
        [persisted(stored("a", override=5.0)), persisted(stored("b", override=7.0))], {}
    )
    sync.loaded("v1")
    assert sync.held("a", encode_config(ConfigUpdate(5.0))) is None  # as wanted
    stale = sync.held("x", encode_config(ConfigUpdate(60.0)))  # left by another database
    assert stale is not None
    assert (stale.interval, stale.action) == (None, "cleared")
    garbage = sync.held("a", b"{not json")
    assert garbage is not None
    assert (garbage.interval, garbage.action) == (5.0, "rewritten")
    # b was never replayed by the broker: pushed once warm-up is over, then no more.
    assert [(p.device_id, p.interval, p.action) for p in sync.unseen()] == [("b", 7.0, "pushed")]
    assert not sync.reconciling
    assert sync.unseen() == []
    assert dict(sync.counts) == {"cleared": 1, "rewritten": 1, "pushed": 1}


def test_timing_settings_given_explicitly_win_over_the_stored_default_class() -> None:
    stored_default = DeviceClass(
        name=DEFAULT_CLASS,
        interval=None,
        grace=2.0,
        missed_limit=5,
        lost_after=600.0,
        description="",
    )
    implicit = ConfigSync(DEFAULTS).policies([stored_default])[DEFAULT_CLASS]
    assert (implicit.grace, implicit.missed_limit, implicit.lost_after) == (2.0, 5, 600.0)
    pinned = ConfigSync(
        DefaultTiming(grace=1.0, missed_limit=3, lost_after=86_400.0, explicit=frozenset({"grace"}))
    ).policies([stored_default])[DEFAULT_CLASS]
    assert (pinned.grace, pinned.missed_limit, pinned.lost_after) == (1.0, 5, 600.0)
    # No stored default class: the settings make it.
    made = ConfigSync(DEFAULTS).policies([])[DEFAULT_CLASS]
    assert (made.grace, made.missed_limit, made.lost_after) == (10.0, 3, 86_400.0)


def test_a_forgotten_device_leaves_nothing_behind() -> None:
    sync = ConfigSync(DEFAULTS)
    sync.remember_persisted([persisted(stored("a", override=5.0, maintenance=True))], {})
    sync.loaded("v1")
    sync.forget("a")
    assert (dict(sync.overrides), dict(sync.maintenance), dict(sync.pushed)) == ({}, {}, {})
    assert sync.unseen() == []
