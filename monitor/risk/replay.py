"""Days of simulated fleet history in accelerated time, through the real liveness engine.

The degradation schedule (``device_client/degradation.py``) says what each device does;
this module turns that into the protocol messages a broker would deliver (presence,
heartbeats, wills), in arrival order over the whole fleet, and feeds them to the pure
:class:`~monitor.liveness.LivenessEngine` and a :class:`SignalTracker` exactly as the
monitor's shell does. Every ``cycle`` seconds of simulated time the fleet is scored's
features are taken, as the monitor's scorer would; the transitions the engine returns
are the labels (``labels.py``). Nothing waits: a day of a 500-device fleet replays in
seconds.

Message timing follows the broker: a dropped connection's will arrives at once (the
socket closed), the device's new session announces itself ``down_for`` later with seq
back at 0; after a reboot its uptime starts again from 0. A hung device keeps its
connection (no will) and only its missing heartbeats tell.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from device_client.degradation import ActionKind, DevicePlan, device_actions
from device_client.protocol import Heartbeat, OfflineReason, Presence, PresenceState
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.outcomes import Outcome
from monitor.liveness.states import Transition
from monitor.risk.features import FeatureFrame, compute
from monitor.risk.signals import SignalTracker

if TYPE_CHECKING:
    from monitor.risk.scorer import RiskScorer

EPOCH: Final = 1_800_000_000.0
"""Wall clock of the replay's time 0 (any fixed value: only differences matter)."""

_HEARTBEAT: Final = 0
_ONLINE: Final = 1
_WILL: Final = 2

_ACCEPTED: Final = frozenset({Outcome.ACCEPTED, Outcome.RECONNECTED})


@dataclass(frozen=True, slots=True)
class _Message:
    at: float
    kind: int
    device: int
    heartbeat: Heartbeat | None = None
    session: str = ""


@dataclass
class ReplayResult:
    plans: list[DevicePlan]
    transitions: list[Transition] = field(default_factory=list)
    frames: list[FeatureFrame] = field(default_factory=list)
    heartbeats: int = 0

    def samples(self) -> tuple[npt.NDArray[np.float64], list[str], npt.NDArray[np.float64]]:
        """All scored rows: features, device ids, wall times."""
        if not self.frames:
            return np.empty((0, 0)), [], np.empty(0)
        x = np.vstack([f.x for f in self.frames])
        ids = [d for f in self.frames for d in f.device_ids]
        times = np.concatenate([np.full(len(f.device_ids), f.now + EPOCH) for f in self.frames])
        return x, ids, times


def device_id(plan: DevicePlan) -> str:
    return f"{plan.profile.value}-{plan.index:05d}"


def _messages(plan: DevicePlan, until: float) -> Iterator[_Message]:
    """One device's messages in arrival order."""
    index = plan.index
    generation = 0
    session = f"s{index:x}g{generation}"
    seq = 0
    boot = 0.0
    last_arrival = -1.0
    started = False
    for action in device_actions(plan, until=until):
        t = action.at
        if not started:
            started = True
            boot = t - 30.0
            yield _Message(max(t - 0.5, 0.0), _ONLINE, index, session=session)
        if action.kind is ActionKind.BEAT:
            arrival = max(t + action.latency, last_arrival + 1e-3)
            last_arrival = arrival
            hb = Heartbeat(
                seq=seq,
                session=session,
                interval=plan.interval,
                ts=EPOCH + t,
                uptime=t - boot,
                metrics=dict(action.metrics or {}),
            )
            seq += 1
            yield _Message(arrival, _HEARTBEAT, index, heartbeat=hb)
            continue
        at = max(t, last_arrival + 1e-3)
        last_arrival = at
        if action.kind is ActionKind.HANG:
            return
        yield _Message(at, _WILL, index, session=session)
        if action.kind is ActionKind.DIE:
            return
        generation += 1
        session = f"s{index:x}g{generation}"
        seq = 0
        back = t + action.down_for
        if action.kind is ActionKind.REBOOT:
            boot = back
        last_arrival = back
        yield _Message(back, _ONLINE, index, session=session)


def replay(
    plans: list[DevicePlan],
    *,
    duration: float,
    cycle: float = 300.0,
    on_cycle: Callable[[FeatureFrame], None] | None = None,
    keep_frames: bool = True,
    scorer: RiskScorer | None = None,
) -> ReplayResult:
    """Replay ``plans`` for ``duration`` simulated seconds, scoring every ``cycle``.

    With ``scorer``, the monitor's own scorer is fed instead of a bare tracker and asked
    to score (and keep history) at every cycle, as the running monitor does.
    """
    engine = LivenessEngine()
    tracker = SignalTracker() if scorer is None else scorer.tracker
    result = ReplayResult(plans)
    ids = [device_id(p) for p in plans]
    streams = [_messages(p, duration) for p in plans]
    merged = heapq.merge(*streams, key=lambda m: m.at)
    next_cycle = cycle
    transitions = result.transitions

    def absorb(trs: tuple[Transition, ...] | list[Transition], now: float) -> None:
        for tr in trs:
            transitions.append(tr)
            if scorer is None:
                tracker.transition(tr, now)
            else:
                scorer.transition(tr, now)

    def score_until(t: float) -> None:
        nonlocal next_cycle
        while next_cycle <= t:
            absorb(engine.tick(next_cycle, EPOCH + next_cycle), next_cycle)
            if scorer is not None:
                scorer.score_at(next_cycle, EPOCH + next_cycle)
            frame = compute(tracker, next_cycle)
            if on_cycle is not None:
                on_cycle(frame)
            if keep_frames:
                result.frames.append(frame)
            next_cycle += cycle

    for msg in merged:
        if msg.at >= duration:
            break
        now = msg.at
        score_until(now)
        wall = EPOCH + now
        absorb(engine.tick(now, wall), now)
        plan = plans[msg.device]
        name = ids[msg.device]
        if msg.kind == _HEARTBEAT:
            hb = msg.heartbeat
            assert hb is not None
            res = engine.heartbeat(name, hb, now, wall)
            if res.outcome in _ACCEPTED:
                result.heartbeats += 1
                tracker.heartbeat(
                    name,
                    hb,
                    now,
                    interval=plan.interval,
                    latency=res.latency,
                    device_class=plan.device_class,
                )
            absorb(res.transitions, now)
        elif msg.kind == _ONLINE:
            res = engine.presence(name, Presence(PresenceState.ONLINE, msg.session), now, wall)
            absorb(res.transitions, now)
        else:
            will = Presence(PresenceState.OFFLINE, msg.session, OfflineReason.CONNECTION_LOST)
            absorb(engine.presence(name, will, now, wall).transitions, now)
    score_until(duration)
    absorb(engine.tick(duration, EPOCH + duration), duration)
    return result
