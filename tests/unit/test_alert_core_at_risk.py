"""At-risk alerts in the alert core (rule A11 in core.py) and their routing, step by step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.alerts.core import (
    RISK_CLEAR_PASSES,
    AlertCore,
    AlertOptions,
    DeviceContext,
    DeviceState,
    Event,
    Intent,
    OpenAlert,
    OpenRiskAlert,
    ResolveRiskAlert,
    RiskEntry,
)
from monitor.alerts.levels import Severity
from monitor.alerts.routing import AT_RISK, Rule, min_risk, route, route_at_risk
from monitor.alerts.schedule import Quiet, QuietMute, Scope, Window
from monitor.liveness.states import Reason, State, Transition

WALL0 = 1_800_000_000.0
CTX = DeviceContext("pumps", frozenset({"site-a"}))
REASONS = ("battery 3 % and falling", "8 reconnects in the last hour")


def entry(
    level: str, *, dev: str = "pump-7", min_level: str | None = "high", up: bool = True
) -> RiskEntry:
    device = DeviceState(dev, "online" if up else "late", None, WALL0, CTX)
    return RiskEntry(device, level, REASONS if level != "low" else (), min_level, up=up)


def scored(core: AlertCore, *entries: RiskEntry, at: float = 0.0) -> list[Intent]:
    return core.risk_pass(list(entries), wall=WALL0 + at)


def went(core: AlertCore, old: State, new: State, reason: Reason, at: float) -> list[Intent]:
    tr = Transition("pump-7", old, new, reason, WALL0 + at, "s1")
    return core.transition(tr, context=CTX, key=f"pump-7:{at}", now=at, wall=WALL0 + at)


def test_reaching_the_rule_level_opens_one_warning_that_is_not_repeated() -> None:
    core = AlertCore()
    assert scored(core, entry("elevated"), at=0) == []  # below the rule's "high"
    (opened,) = scored(core, entry("high"), at=60)
    assert isinstance(opened, OpenRiskAlert)
    assert opened.device.device_id == "pump-7"
    assert opened.level == "high"
    assert opened.reasons == REASONS
    assert core.has_risk_alert("pump-7")
    # Still at risk, or more, or less but still reaching the rule: nothing more is said.
    for at in (120, 180, 240):
        assert scored(core, entry("high"), at=at) == []
    assert core.counts().at_risk == 1


def test_off_unless_a_rule_asks_for_it() -> None:
    core = AlertCore()
    assert scored(core, entry("high", min_level=None), at=0) == []
    assert not core.has_risk_alert("pump-7")
    # An elevated rule alerts elevated and high alike.
    (opened,) = scored(core, entry("elevated", min_level="elevated"), at=60)
    assert isinstance(opened, OpenRiskAlert)


def test_it_resolves_once_the_risk_stayed_below_for_the_clearing_passes() -> None:
    core = AlertCore()
    scored(core, entry("high"), at=0)
    # One pass below, then up again: a hovering score does not flap.
    assert scored(core, entry("elevated"), at=60) == []
    assert scored(core, entry("high"), at=120) == []
    out: list[Intent] = []
    for k in range(RISK_CLEAR_PASSES):
        out = scored(core, entry("low"), at=180 + 60 * k)
        if k < RISK_CLEAR_PASSES - 1:
            assert out == []
    (cleared,) = out
    assert isinstance(cleared, ResolveRiskAlert)
    assert cleared.event is Event.RISK_CLEARED
    assert not core.has_risk_alert("pump-7")
    # At risk again later: a new alert.
    (again,) = scored(core, entry("high"), at=600)
    assert isinstance(again, OpenRiskAlert)
    assert again.key != cleared.key


def test_a_device_missing_from_the_pass_counts_as_low() -> None:
    core = AlertCore()
    scored(core, entry("high"), at=0)
    outs = [scored(core, at=60 * (k + 1)) for k in range(RISK_CLEAR_PASSES)]
    assert all(o == [] for o in outs[:-1])
    (cleared,) = outs[-1]
    assert isinstance(cleared, ResolveRiskAlert)
    assert cleared.event is Event.RISK_CLEARED


def test_going_down_resolves_it_silently_and_the_state_alert_takes_over() -> None:
    core = AlertCore(AlertOptions(storm_window=10.0))
    scored(core, entry("high"), at=0)
    (superseded,) = went(core, State.ONLINE, State.STALE, Reason.STOPPED_BEATING, 30.0)
    assert isinstance(superseded, ResolveRiskAlert)
    assert superseded.event is None  # no notification: the down alert says it
    assert superseded.note == "went stale"
    assert not core.has_risk_alert("pump-7")
    (down,) = core.tick(now=40.0, wall=WALL0 + 40.0, fleet_size=10, settled=True)
    assert isinstance(down, OpenAlert)
    assert down.severity is Severity.CRITICAL
    # Still scored high while down: no at-risk alert for a device that is down.
    assert scored(core, entry("high"), at=60) == []
    assert scored(core, entry("high", up=False), at=120) == []


def test_a_device_not_online_opens_nothing_and_an_open_one_waits() -> None:
    core = AlertCore()
    assert scored(core, entry("high", up=False), at=0) == []
    scored(core, entry("high"), at=60)
    # Late (not online, not down): no clearing counted while it is not up.
    for k in range(RISK_CLEAR_PASSES + 1):
        assert scored(core, entry("low", up=False), at=120 + 60 * k) == []
    assert core.has_risk_alert("pump-7")


def test_mutes_and_maintenance_windows_silence_at_risk_alerts() -> None:
    at = datetime.fromtimestamp(WALL0, UTC)
    core = AlertCore()
    core.set_quiet(Quiet(mutes=(QuietMute(1, Scope.of(devices=["pump-7"]), at + timedelta(60)),)))
    assert scored(core, entry("high"), at=0) == []
    core.set_quiet(
        Quiet(windows=(Window(1, Scope.of(tags=["site-a"]), at, at + timedelta(seconds=300)),))
    )
    assert scored(core, entry("high"), at=100) == []
    # The window ended, still at risk: alerted now.
    (opened,) = scored(core, entry("high"), at=400)
    assert isinstance(opened, OpenRiskAlert)


def test_maintenance_and_forget_drop_the_at_risk_alert() -> None:
    core = AlertCore()
    scored(core, entry("high"), at=0)
    (put_aside,) = went(core, State.ONLINE, State.MAINTENANCE, Reason.MAINTENANCE_STARTED, 10)
    assert isinstance(put_aside, ResolveRiskAlert)
    assert put_aside.event is None
    scored(core, entry("high"), at=20)
    core.forget("pump-7")
    assert core.counts().at_risk == 0


def test_a_reloaded_at_risk_alert_is_not_opened_again_and_can_be_dropped() -> None:
    core = AlertCore()
    core.load_risk_alert("pump-7")
    assert scored(core, entry("high"), at=0) == []
    (dropped,) = core.drop_risk_alerts(wall=WALL0, note="risk scoring off")
    assert isinstance(dropped, ResolveRiskAlert)
    assert dropped.event is None
    assert not core.has_risk_alert("pump-7")


# --- routing ------------------------------------------------------------------------------


def test_at_risk_rules_route_only_at_risk_alerts_and_keep_the_no_rules_default() -> None:
    risky = Rule("risky", ("phone",), classes=frozenset({"pumps"}), kind=AT_RISK, min_risk="high")
    loose = Rule("loose", ("chat",), kind=AT_RISK, min_risk="elevated")
    channels = ("chat", "mail", "phone")
    # Only at-risk rules: state alerts still go everywhere when critical (no state rules).
    assert (
        route(
            [risky], channels, device_class="pumps", tags=frozenset(), severity=Severity.CRITICAL
        ).channels
        == channels
    )
    assert (
        route(
            [risky], channels, device_class="pumps", tags=frozenset(), severity=Severity.WARNING
        ).channels
        == ()
    )
    # A state rule never carries at-risk alerts, an at-risk rule never state alerts.
    state = Rule("ops", ("mail",), min_severity=Severity.WARNING)
    assert route(
        [state, risky], channels, device_class="pumps", tags=frozenset(), severity=Severity.WARNING
    ).channels == ("mail",)
    assert (
        route_at_risk(
            [state], channels, device_class="pumps", tags=frozenset(), level="high"
        ).channels
        == ()
    )
    both = [state, risky, loose]
    assert route_at_risk(
        both, channels, device_class="pumps", tags=frozenset(), level="high"
    ).channels == ("chat", "phone")
    assert route_at_risk(
        both, channels, device_class="pumps", tags=frozenset(), level="elevated"
    ).channels == ("chat",)
    assert min_risk(both, device_class="pumps", tags=frozenset()) == "elevated"
    assert min_risk([state, risky], device_class="valves", tags=frozenset()) is None
    assert min_risk([state, risky], device_class="pumps", tags=frozenset()) == "high"
