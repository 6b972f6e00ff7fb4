"""The alert decision core, step by step with explicit times (rules A1-A8 in core.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from monitor.alerts.core import (
    AlertCore,
    AlertOptions,
    DeviceContext,
    DeviceState,
    Event,
    GrowOutage,
    Intent,
    OpenAlert,
    OpenOutage,
    ResolveAlert,
    ResolveGroup,
    ResolveOutage,
    UpdateAlert,
)
from monitor.alerts.levels import Severity
from monitor.alerts.schedule import Quiet, QuietMute, Scope, Window
from monitor.liveness.states import Reason, State, Transition

WALL0 = 1_800_000_000.0
OPTS = AlertOptions(
    storm_window=10.0, storm_share=0.5, storm_min_devices=3, flap_changes=4, flap_window=60.0
)
_keys = count()

ON, LATE, STALE, OFF, LOST, MAINT = (
    State.ONLINE,
    State.LATE,
    State.STALE,
    State.OFFLINE,
    State.LOST,
    State.MAINTENANCE,
)

REASONS = {
    (None, ON): Reason.FIRST_SEEN,
    ON: Reason.HEARTBEAT,
    LATE: Reason.MISSED_HEARTBEATS,
    STALE: Reason.STOPPED_BEATING,
    OFF: Reason.CONNECTION_LOST,
    LOST: Reason.GONE,
    MAINT: Reason.MAINTENANCE_STARTED,
}


class Driver:
    """Feeds a core transitions and ticks at explicit monotonic times."""

    def __init__(self, options: AlertOptions = OPTS, fleet: int = 4) -> None:
        self.core = AlertCore(options)
        self.fleet = fleet
        self.settled = True

    def change(
        self, dev: str, old: State | None, new: State, now: float, reason: Reason | None = None
    ) -> list[Intent]:
        tr = Transition(dev, old, new, reason or REASONS[new], WALL0 + now, "s1")
        return self.core.transition(
            tr,
            context=DeviceContext("default"),
            key=f"{dev}:{next(_keys)}",
            now=now,
            wall=WALL0 + now,
        )

    def tick(self, now: float) -> list[Intent]:
        return self.core.tick(
            now=now, wall=WALL0 + now, fleet_size=self.fleet, settled=self.settled
        )


def kinds(intents: list[Intent]) -> list[str]:
    return [type(i).__name__ for i in intents]


# --- A1/A2: one device ------------------------------------------------------------------


def test_a_drop_is_held_then_alerted_once_and_its_recovery_is_held_then_sent() -> None:
    d = Driver()
    assert d.change("pump", ON, OFF, 0.0) == []
    assert d.tick(5.0) == []
    (opened,) = d.tick(10.0)
    assert isinstance(opened, OpenAlert)
    assert opened.device.state == "offline"
    assert opened.device.reason == "connection-lost"
    assert opened.severity is Severity.CRITICAL
    assert opened.event is Event.DOWN
    assert d.tick(11.0) == []
    assert d.core.has_open_alert("pump")

    assert d.change("pump", OFF, ON, 30.0) == []
    assert d.tick(35.0) == []
    (resolved,) = d.tick(40.0)
    assert isinstance(resolved, ResolveAlert)
    assert resolved.event is Event.RECOVERED
    assert not d.core.has_open_alert("pump")


def test_a_blip_shorter_than_the_window_says_nothing() -> None:
    d = Driver()
    d.change("pump", ON, OFF, 0.0)
    assert d.change("pump", OFF, ON, 4.0) == []
    assert d.tick(20.0) == []
    assert d.core.counts().held_down == 0


def test_down_to_worse_updates_the_open_alert_and_silent_episodes_stay_silent() -> None:
    d = Driver()
    d.change("pump", ON, STALE, 0.0)
    d.tick(10.0)
    (worse,) = d.change("pump", STALE, LOST, 20.0)
    assert isinstance(worse, UpdateAlert)
    assert worse.event is Event.WORSE
    assert worse.device.state == "lost"
    # A device that was down before anyone decided (no open alert) stays silent.
    assert d.change("other", OFF, LOST, 20.0) == []
    assert d.change("other", LOST, ON, 30.0) == []
    assert d.tick(50.0) == []


def test_a_deeper_state_while_held_replaces_the_held_one() -> None:
    d = Driver(AlertOptions(storm_window=10.0, alert_late=True, storm_min_devices=3))
    d.change("pump", ON, LATE, 0.0)
    d.change("pump", LATE, STALE, 3.0)
    (opened,) = d.tick(10.0)
    assert isinstance(opened, OpenAlert)
    assert (opened.device.state, opened.severity) == ("stale", Severity.CRITICAL)


def test_announced_shutdown_is_quiet_by_default_and_alerts_when_configured() -> None:
    d = Driver()
    assert d.change("pump", ON, OFF, 0.0, Reason.SHUTDOWN) == []
    assert d.tick(20.0) == []
    # ... and coming back from it is neither a recovery nor a counted change.
    assert d.change("pump", OFF, ON, 30.0) == []
    assert d.tick(50.0) == []

    loud = Driver(AlertOptions(storm_window=10.0, alert_on_shutdown=True, storm_min_devices=3))
    loud.change("pump", ON, OFF, 0.0, Reason.SHUTDOWN)
    (opened,) = loud.tick(10.0)
    assert isinstance(opened, OpenAlert)
    assert opened.device.reason == "shutdown"


def test_a_shutdown_after_going_stale_drops_the_held_alert() -> None:
    d = Driver()
    d.change("pump", ON, STALE, 0.0)
    d.change("pump", STALE, OFF, 2.0, Reason.SHUTDOWN)
    assert d.tick(20.0) == []


def test_late_is_ignored_by_default_and_a_warning_when_enabled() -> None:
    d = Driver()
    assert d.change("pump", ON, LATE, 0.0) == []
    assert d.tick(20.0) == []
    # late -> stale is the drop when late does not count.
    d.change("pump", LATE, STALE, 25.0)
    assert kinds(d.tick(35.0)) == ["OpenAlert"]

    w = Driver(AlertOptions(storm_window=10.0, alert_late=True, storm_min_devices=3))
    w.change("pump", ON, LATE, 0.0)
    (opened,) = w.tick(10.0)
    assert isinstance(opened, OpenAlert)
    assert opened.severity is Severity.WARNING
    (worse,) = w.change("pump", LATE, STALE, 20.0)
    assert isinstance(worse, UpdateAlert)
    assert worse.severity is Severity.CRITICAL


# --- A3: warm-up and blindness --------------------------------------------------------------


def test_nothing_is_released_until_the_monitor_is_settled() -> None:
    d = Driver()
    d.settled = False
    d.change("pump", ON, OFF, 0.0)
    assert d.tick(30.0) == []
    d.settled = True
    assert kinds(d.tick(30.2)) == ["OpenAlert"]


def test_drops_judged_during_warm_up_are_grouped_when_it_ends() -> None:
    d = Driver(fleet=6)
    d.settled = False
    for i in range(5):
        d.change(f"d{i}", ON, STALE, float(i))
    assert d.tick(40.0) == []
    d.settled = True
    (outage,) = d.tick(40.2)
    assert isinstance(outage, OpenOutage)
    assert len(outage.devices) == 5


# --- A4-A6: storms --------------------------------------------------------------------------


def test_many_drops_within_the_window_are_one_outage_and_recover_as_one() -> None:
    d = Driver(fleet=10)
    for i in range(8):
        d.change(f"d{i}", ON, OFF, i * 0.1)
    assert d.tick(9.0) == []
    (outage,) = d.tick(10.0)
    assert isinstance(outage, OpenOutage)
    assert sorted(x.device_id for x in outage.devices) == [f"d{i}" for i in range(8)]
    assert d.core.counts().held_down == 0

    # A drop right after joins the incident silently (recorded, not notified).
    (grow,) = d.change("d8", ON, OFF, 10.5)
    assert isinstance(grow, GrowOutage)
    assert d.tick(30.0) == []

    # Recoveries are silent until every member is back.
    for i in range(9):
        assert d.change(f"d{i}", OFF, ON, 40.0 + i * 0.1) == []
    (over,) = d.tick(41.0)
    assert isinstance(over, ResolveOutage)
    assert (over.total, over.recovered, over.still_down) == (9, 9, ())
    assert d.core.counts().incidents == 0


def test_an_outage_with_devices_that_stay_down_closes_and_alerts_them_on_their_own() -> None:
    d = Driver(fleet=10)
    for i in range(6):
        d.change(f"d{i}", ON, OFF, 0.0)
    assert kinds(d.tick(10.0)) == ["OpenOutage"]
    for i in range(5):
        d.change(f"d{i}", OFF, ON, 20.0)
    # Quiet for 3 x window after the last recovery: close, and judge d5 alone.
    assert d.tick(49.0) == []
    over, alone = d.tick(50.0)
    assert isinstance(over, ResolveOutage)
    assert (over.total, over.recovered, over.still_down) == (6, 5, ("d5",))
    assert isinstance(alone, OpenAlert)
    assert alone.device.device_id == "d5"


def test_fewer_drops_than_the_threshold_alert_one_by_one() -> None:
    d = Driver(fleet=20)  # threshold max(3, 0.5 x 20) = 10
    for i in range(4):
        d.change(f"d{i}", ON, OFF, float(i))
    assert kinds(d.tick(10.0)) == ["OpenAlert"]
    assert kinds(d.tick(13.0)) == ["OpenAlert"] * 3


def test_many_recoveries_of_open_alerts_resolve_as_one_group() -> None:
    d = Driver(fleet=6)  # threshold 3
    for i in range(3):
        d.change(f"d{i}", ON, OFF, i * 20.0)  # far apart: alerted one by one
        assert kinds(d.tick(i * 20.0 + 10.0)) == ["OpenAlert"]
    for i in range(3):
        d.change(f"d{i}", OFF, ON, 100.0)
    (group,) = d.tick(110.0)
    assert isinstance(group, ResolveGroup)
    assert sorted(x.device_id for x in group.devices) == ["d0", "d1", "d2"]
    assert d.core.counts().open_alerts == 0


def test_a_recovery_cancelled_by_a_new_drop_keeps_the_alert_open_silently() -> None:
    d = Driver()
    d.change("pump", ON, OFF, 0.0)
    d.tick(10.0)
    d.change("pump", OFF, ON, 20.0)
    assert d.change("pump", ON, STALE, 25.0) == []
    assert d.tick(40.0) == []
    assert d.core.has_open_alert("pump")


# --- A7: flapping ----------------------------------------------------------------------------


def _flap(d: Driver, dev: str, start: float, times: int) -> list[Intent]:
    out: list[Intent] = []
    t = start
    for _ in range(times):
        out += d.change(dev, ON, OFF, t)
        out += d.change(dev, OFF, ON, t + 1.0)
        t += 2.0
    return out


def test_a_flapping_device_gives_one_alert_then_silence_then_one_stable_notice() -> None:
    d = Driver()
    out = _flap(d, "pump", 0.0, 2)  # 4 changes: not yet more than flap_changes
    assert out == []
    out = d.change("pump", ON, OFF, 4.0)  # the 5th change
    (flapping,) = out
    assert isinstance(flapping, OpenAlert)
    assert flapping.flapping
    assert flapping.event is Event.FLAPPING
    assert flapping.changes == 5
    # More flapping: silence.
    assert _flap(d, "pump", 5.0, 10) == []
    assert d.tick(30.0) == []
    # Stable (no change) for flap_window, ending online: resolved with one notice.
    assert d.tick(24.0 + 59.0) == []
    (stable,) = d.tick(24.0 + 60.0)
    assert isinstance(stable, ResolveAlert)
    assert stable.event is Event.STABLE
    assert not d.core.is_flapping("pump")


def test_a_flapping_device_that_settles_down_keeps_a_normal_down_alert() -> None:
    d = Driver()
    _flap(d, "pump", 0.0, 2)
    d.change("pump", ON, OFF, 4.0)
    d.change("pump", OFF, ON, 5.0)
    d.change("pump", ON, STALE, 6.0)
    (stable,) = d.tick(66.0)
    assert isinstance(stable, UpdateAlert)
    assert stable.event is Event.STABLE
    assert not stable.flapping
    assert stable.device.state == "stale"
    assert d.core.has_open_alert("pump")


def test_flapping_of_a_device_with_an_open_alert_marks_that_alert() -> None:
    d = Driver()
    d.change("pump", ON, OFF, 0.0)
    d.tick(10.0)  # alert open
    d.change("pump", OFF, ON, 11.0)
    out = _flap(d, "pump", 12.0, 2)
    (mark,) = out
    assert isinstance(mark, UpdateAlert)
    assert mark.event is Event.FLAPPING
    assert mark.flapping


def test_changes_spread_wider_than_the_window_are_not_flapping() -> None:
    d = Driver()
    out: list[Intent] = []
    for i in range(6):
        t = i * 40.0
        out += d.change("pump", ON, OFF, t)
        out += d.tick(t + 10.0)
        out += d.change("pump", OFF, ON, t + 20.0)
        out += d.tick(t + 30.0)
    assert kinds(out) == ["OpenAlert", "ResolveAlert"] * 6


# --- A8: maintenance windows, mutes, engine maintenance ---------------------------------------


def _window(start: float, end: float, **scope: list[str]) -> Quiet:
    at = datetime.fromtimestamp(WALL0, UTC)
    return Quiet(
        windows=(
            Window(
                1,
                Scope.of(**scope),
                at + timedelta(seconds=start),
                at + timedelta(seconds=end),
            ),
        )
    )


def test_no_alerts_inside_a_window_and_one_when_it_ends_with_the_device_still_down() -> None:
    d = Driver()
    d.core.set_quiet(_window(0.0, 100.0, devices=["pump"]))
    assert d.change("pump", ON, OFF, 10.0) == []
    assert d.tick(30.0) == []
    assert d.change("pump", OFF, LOST, 60.0) == []  # worse, still inside: nothing
    assert d.core.counts().silenced_down == 1
    # Other devices are not covered.
    d.change("fan", ON, OFF, 10.0)
    assert kinds(d.tick(30.2)) == ["OpenAlert"]
    # The window ends with the pump still down: held from then on (A2), then alerted
    # with the state it is in now.
    assert d.tick(100.0) == []
    assert d.tick(109.0) == []
    (opened,) = d.tick(110.0)
    assert isinstance(opened, OpenAlert)
    assert (opened.device.device_id, opened.device.state) == ("pump", "lost")
    assert d.core.counts().silenced_down == 0
    # Back up: its recovery is sent like any other.
    d.change("pump", LOST, ON, 200.0)
    assert kinds(d.tick(210.0)) == ["ResolveAlert"]


def test_a_device_back_before_the_window_ends_never_alerts() -> None:
    d = Driver()
    d.core.set_quiet(_window(0.0, 100.0, devices=["pump"]))
    d.change("pump", ON, OFF, 10.0)
    d.change("pump", OFF, ON, 50.0)
    d.change("pump", ON, OFF, 60.0, Reason.SHUTDOWN)  # an announced shutdown: quiet
    assert d.core.counts().silenced_down == 0
    assert d.tick(100.0) == []
    assert d.tick(200.0) == []
    # Down again after the window: alerted normally.
    d.change("pump", OFF, ON, 210.0)
    d.change("pump", ON, STALE, 220.0)
    assert kinds(d.tick(230.0)) == ["OpenAlert"]


def test_a_window_over_many_devices_ending_with_them_dead_is_one_outage() -> None:
    d = Driver(fleet=10)
    d.core.set_quiet(_window(0.0, 100.0))
    for i in range(6):
        d.change(f"d{i}", ON, OFF, 10.0 + i)
    assert d.tick(99.0) == []
    d.tick(100.0)
    (outage,) = d.tick(110.0)
    assert isinstance(outage, OpenOutage)
    assert len(outage.devices) == 6


def test_a_device_covered_by_two_windows_waits_for_both() -> None:
    d = Driver()
    at = datetime.fromtimestamp(WALL0, UTC)
    d.core.set_quiet(
        Quiet(
            windows=(
                Window(1, Scope.of(devices=["pump"]), at, at + timedelta(seconds=50)),
                Window(2, Scope.of(classes=["default"]), at, at + timedelta(seconds=100)),
            )
        )
    )
    d.change("pump", ON, OFF, 10.0)
    assert d.tick(60.0) == []
    assert d.tick(90.0) == []
    d.tick(100.0)
    assert kinds(d.tick(110.0)) == ["OpenAlert"]


def test_engine_maintenance_forgets_a_silenced_drop() -> None:
    d = Driver()
    d.core.set_quiet(_window(0.0, 100.0))
    d.change("pump", ON, OFF, 10.0)
    d.change("pump", OFF, MAINT, 20.0)
    assert d.core.counts().silenced_down == 0
    d.tick(100.0)
    assert d.tick(120.0) == []


def test_a_window_starting_while_a_drop_is_held_silences_it() -> None:
    d = Driver()
    d.change("pump", ON, OFF, 0.0)
    d.core.set_quiet(_window(5.0, 100.0, tags=["line-3"]))
    # Not covered: the pump carries no tag.
    assert kinds(d.tick(10.0)) == ["OpenAlert"]

    d2 = Driver()
    d2.change("pump", ON, OFF, 0.0)
    d2.core.set_quiet(_window(5.0, 100.0))  # the whole fleet
    assert d2.tick(10.0) == []


def test_recovery_of_an_alert_that_was_sent_goes_out_even_inside_a_window() -> None:
    d = Driver()
    d.change("pump", ON, OFF, 0.0)
    d.tick(10.0)
    d.core.set_quiet(_window(15.0, 100.0))
    d.change("pump", OFF, ON, 20.0)
    assert kinds(d.tick(30.0)) == ["ResolveAlert"]


def test_a_mute_silences_until_it_expires() -> None:
    d = Driver()
    until = datetime.fromtimestamp(WALL0 + 50.0, UTC)
    d.core.set_quiet(Quiet(mutes=(QuietMute(1, Scope.of(classes=["default"]), until),)))
    d.change("pump", ON, OFF, 10.0)
    assert d.tick(30.0) == []
    # Expired with the pump still down: held from the first tick after it (A9).
    assert d.tick(52.0) == []
    d.change("fan", ON, OFF, 55.0)
    (pump,) = d.tick(62.0)
    assert isinstance(pump, OpenAlert)
    assert pump.device.device_id == "pump"
    (fan,) = d.tick(65.0)
    assert isinstance(fan, OpenAlert)
    assert fan.device.device_id == "fan"


def test_entering_engine_maintenance_resolves_quietly_and_leaving_it_down_is_silent() -> None:
    d = Driver()
    d.change("pump", ON, OFF, 0.0)
    d.tick(10.0)
    (resolved,) = d.change("pump", OFF, MAINT, 20.0)
    assert isinstance(resolved, ResolveAlert)
    assert resolved.event is None
    assert d.change("pump", MAINT, STALE, 30.0, Reason.MAINTENANCE_ENDED) == []
    assert d.tick(60.0) == []


# --- restart helpers -----------------------------------------------------------------------


def test_a_reloaded_alert_whose_device_is_up_resolves_after_the_window() -> None:
    d = Driver()
    device = DeviceState("pump", "online", "heartbeat", WALL0, DeviceContext())
    d.core.load_open_alert(device, severity=Severity.CRITICAL, flapping=False, up=True, now=0.0)
    assert d.tick(5.0) == []
    assert kinds(d.tick(10.0)) == ["ResolveAlert"]


def test_a_reloaded_outage_resolves_when_its_members_are_back() -> None:
    d = Driver(fleet=10)
    members = [DeviceState(f"d{i}", "offline", None, WALL0, DeviceContext()) for i in range(3)]
    d.core.load_outage("outage:x", members, recovered=["d0", "d1"], first_wall=WALL0, now=0.0)
    assert d.change("d2", OFF, ON, 5.0) == []
    (over,) = d.tick(5.2)
    assert isinstance(over, ResolveOutage)
    assert over.recovered == 3


def test_flush_releases_everything_held_and_undecided_since_tracks_it() -> None:
    d = Driver()
    assert d.core.undecided_since() is None
    d.change("pump", ON, OFF, 1.0)
    assert d.core.undecided_since() == pytest.approx(WALL0 + 1.0)
    (opened,) = d.core.flush(now=2.0, wall=WALL0 + 2.0, fleet_size=4)
    assert isinstance(opened, OpenAlert)
    assert d.core.undecided_since() is None


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="storm_share"):
        AlertOptions(storm_share=0)
    with pytest.raises(ValueError, match="storm_min_devices"):
        AlertOptions(storm_min_devices=1)
    assert AlertOptions(storm_share=0.1, storm_min_devices=5).threshold(1000) == 100
    assert AlertOptions(storm_share=0.1, storm_min_devices=5).threshold(10) == 5


# --- A10: devices never seen alive ---------------------------------------------------------


UNK = State.UNKNOWN


def test_a_device_known_only_from_retained_messages_gives_a_warning_not_a_page() -> None:
    d = Driver(fleet=10)
    # Warm-up ends: devices known only from retained claims are judged dead.
    for i in range(6):
        assert d.change(f"ghost-{i}", UNK, STALE, 1.0) == []
    d.change("ghost-w", UNK, OFF, 1.0, Reason.CONNECTION_LOST)
    opened = d.tick(11.0)
    # One warning each (no outage, though as many as a storm), marked and explained.
    assert kinds(opened) == ["OpenAlert"] * 7
    for intent in opened:
        assert isinstance(intent, OpenAlert)
        assert intent.never_seen
        assert intent.severity is Severity.WARNING
        assert intent.device.reason is not None
        assert intent.device.reason.endswith("; never seen alive by this database")
    # Worse while down: nothing.
    assert d.change("ghost-0", STALE, LOST, 20.0) == []
    assert d.tick(40.0) == []
    # Seen alive at last: recovered, and an ordinary device from now on.
    d.change("ghost-0", LOST, ON, 50.0)
    assert kinds(d.tick(60.0)) == ["ResolveAlert"]
    d.change("ghost-0", ON, OFF, 70.0)
    (page,) = d.tick(80.0)
    assert isinstance(page, OpenAlert)
    assert not page.never_seen
    assert page.severity is Severity.CRITICAL


def test_never_seen_through_late_and_marked_at_start() -> None:
    d = Driver()
    d.change("ghost", UNK, LATE, 1.0)
    d.change("ghost", LATE, STALE, 5.0)
    (late,) = d.tick(15.0)
    assert isinstance(late, OpenAlert)
    assert late.never_seen
    restarted = Driver()
    restarted.core.mark_never_seen(["ghost"])
    restarted.change("ghost", LATE, STALE, 5.0)
    (again,) = restarted.tick(15.0)
    assert isinstance(again, OpenAlert)
    assert again.never_seen


def test_a_never_seen_device_coming_online_within_the_hold_says_nothing() -> None:
    d = Driver()
    d.change("ghost", UNK, STALE, 1.0)
    d.change("ghost", STALE, ON, 5.0)
    assert d.tick(20.0) == []
    assert d.core.undecided_since() is None
