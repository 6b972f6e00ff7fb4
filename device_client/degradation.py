"""Degradation faults as a pure, seeded schedule of what a device does and when.

A device's life is planned up front (:func:`plan_fleet`) and then unrolled into
:class:`Action` values in time order (:func:`device_actions`): heartbeats with the
metrics they carry, connection drops (with or without a reboot), and the end. Nothing
here reads a clock or touches a network, so the same schedule drives two consumers:

* the accelerated replay (``monitor/risk/replay.py``), which turns actions into protocol
  messages and feeds them to the pure liveness engine: days of fleet history in seconds;
* the fleet simulator (``clawbeat simulate --degrade-fraction``), which carries the
  metrics, drops, reboots and deaths out on real connections in real time.

Profiles (the evaluation in ``docs/prediction.md`` counts them apart):

* ``healthy``: ordinary jitter, a rare lost heartbeat, an occasional reconnect;
* ``battery``: the battery drains ever faster from ``onset``; near empty, brown-outs
  delay and lose heartbeats; at ``fail_at`` the device dies (its will is published);
* ``flaky-link``: reconnects grow from one every few hours to one every few minutes,
  RSSI falls, more heartbeats are lost; at ``fail_at`` the link is gone for good;
* ``memory-leak``: free memory falls until the device reboots (new session, uptime
  back to 0, memory restored); the leak speeds up so reboots come more and more often;
  at ``fail_at`` it stops coming back (crash loop);
* ``slowdown``: heartbeats come further and further apart and later (latency grows,
  the device heats up); at ``fail_at`` the application hangs: connected, silent;
* ``sudden-death``: healthy until ``fail_at``, then gone with no warning at all.

Every random draw comes from one ``random.Random`` per device seeded from the fleet
seed and the device's index, so a device's schedule does not depend on the others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

HOUR: Final = 3600.0

# Metric names the schedule reports (and the monitor's signals recognise among others).
BATTERY: Final = "battery_pct"
RSSI: Final = "rssi_dbm"
TEMPERATURE: Final = "temp_c"
FREE_MEMORY: Final = "free_mem_kb"


class Profile(StrEnum):
    HEALTHY = "healthy"
    BATTERY = "battery"
    FLAKY_LINK = "flaky-link"
    MEMORY_LEAK = "memory-leak"
    SLOWDOWN = "slowdown"
    SUDDEN_DEATH = "sudden-death"


DEGRADING: Final = frozenset(
    {Profile.BATTERY, Profile.FLAKY_LINK, Profile.MEMORY_LEAK, Profile.SLOWDOWN}
)


class ActionKind(StrEnum):
    BEAT = "beat"
    """A heartbeat leaves the device (``metrics``, ``latency`` set)."""
    DROP = "drop"
    """The connection drops without DISCONNECT; back after ``down_for`` seconds."""
    REBOOT = "reboot"
    """The device crashes and boots again after ``down_for``: new session, uptime 0."""
    DIE = "die"
    """Gone for good: the socket closes, the broker publishes the will."""
    HANG = "hang"
    """The application hangs: still connected (no will), no more heartbeats."""


@dataclass(frozen=True, slots=True)
class Action:
    at: float
    """Seconds since the schedule's start."""
    kind: ActionKind
    metrics: Mapping[str, float] | None = None
    latency: float = 0.0
    """Seconds the heartbeat spends in transit (its ``ts`` is ``at``, it arrives later)."""
    down_for: float = 0.0


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One device's planned life. ``onset``/``fail_at`` are None for healthy devices."""

    index: int
    profile: Profile
    device_class: str
    interval: float
    seed: int
    onset: float | None = None
    fail_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceClassSpec:
    name: str
    interval: float
    share: float


DEFAULT_CLASSES: Final = (
    DeviceClassSpec("sensor", 60.0, 0.8),
    DeviceClassSpec("gateway", 30.0, 0.2),
)


def _check_mix(mix: Mapping[Profile, float]) -> None:
    for profile, share in mix.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share of {profile} must be between 0 and 1, got {share}")
    if sum(mix.values()) > 1.0 + 1e-9:
        raise ValueError("profile shares add up to more than 1")


def plan_fleet(
    count: int,
    *,
    mix: Mapping[Profile, float],
    duration: float,
    seed: int,
    classes: tuple[DeviceClassSpec, ...] = DEFAULT_CLASSES,
    settle: float = 6 * HOUR,
    span: tuple[float, float] = (4 * HOUR, 20 * HOUR),
) -> list[DevicePlan]:
    """Plan ``count`` devices: ``round(count * share)`` of each faulty profile, rest healthy.

    A degrading device starts degrading ``span`` (drawn uniformly) before it fails; every
    failure falls between ``settle`` (history to compare against) and one hour before
    ``duration`` (so the replay sees it happen). Sudden deaths fall in the same window.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    _check_mix(mix)
    lo, hi = span
    if not 0 < lo <= hi:
        raise ValueError("span must be (lo, hi) with 0 < lo <= hi")
    if settle + lo + HOUR > duration:
        raise ValueError(
            f"duration {duration:g} s is too short for settle {settle:g} s plus a span of "
            f"{lo:g} s plus an hour"
        )
    rng = random.Random(f"fleet:{seed}")
    profiles = [Profile.HEALTHY] * count
    order = list(range(count))
    rng.shuffle(order)
    position = 0
    for profile in Profile:
        if profile is Profile.HEALTHY:
            continue
        n = min(round(count * mix.get(profile, 0.0)), count - position)
        for index in order[position : position + n]:
            profiles[index] = profile
        position += n
    total_share = sum(c.share for c in classes)
    plans = []
    for index, profile in enumerate(profiles):
        pick = rng.uniform(0.0, total_share)
        spec = classes[-1]
        for c in classes:
            if pick < c.share:
                spec = c
                break
            pick -= c.share
        onset = fail_at = None
        if profile in DEGRADING:
            length = rng.uniform(lo, hi)
            fail_at = rng.uniform(settle + length, duration - HOUR)
            onset = fail_at - length
        elif profile is Profile.SUDDEN_DEATH:
            fail_at = rng.uniform(settle, duration - HOUR)
        plans.append(
            DevicePlan(
                index=index,
                profile=profile,
                device_class=spec.name,
                interval=spec.interval,
                seed=rng.getrandbits(48),
                onset=onset,
                fail_at=fail_at,
            )
        )
    return plans


@dataclass(slots=True)
class _Body:
    """The simulated hardware's state between actions."""

    battery: float
    drain_per_h: float
    rssi: float
    temp: float
    mem_full: float
    mem: float
    jitter: float
    """Standard deviation of a heartbeat's delay, as a fraction of the interval."""


def device_actions(plan: DevicePlan, *, until: float) -> Iterator[Action]:
    """Unroll ``plan`` into actions in time order, up to ``until`` or the device's end."""
    rng = random.Random(plan.seed)
    interval = plan.interval
    body = _Body(
        battery=rng.uniform(55.0, 100.0),
        drain_per_h=rng.uniform(0.0, 0.4),
        rssi=rng.uniform(-75.0, -50.0),
        temp=rng.uniform(30.0, 45.0),
        mem_full=rng.uniform(150.0, 400.0),
        mem=0.0,
        jitter=rng.uniform(0.005, 0.04),
    )
    body.mem = body.mem_full * rng.uniform(0.85, 0.95)
    profile = plan.profile
    onset = plan.onset if plan.onset is not None else math.inf
    fail_at = plan.fail_at if plan.fail_at is not None else math.inf
    # Healthy background: reconnects once every 12-96 h, a reboot about weekly.
    reconnect_every = rng.uniform(12.0, 96.0) * HOUR
    reboot_every = rng.uniform(100.0, 300.0) * HOUR
    leak_cycle_start = rng.uniform(6.0, 10.0) * HOUR  # memory leak: first cycle length
    leak_cycle_end = rng.uniform(0.2, 0.4) * HOUR
    base_latency = rng.uniform(0.02, 0.2)
    t = rng.uniform(0.0, interval)
    last = t
    mem_leak_per_h = 0.0
    while t < until:
        p = _progress(t, onset, fail_at)
        if t >= fail_at:
            yield Action(t, ActionKind.HANG if _hangs(profile, rng) else ActionKind.DIE)
            return
        dt_h = (t - last) / HOUR
        last = t
        # -- the body drifts -------------------------------------------------------------
        drain = body.drain_per_h
        if profile is Profile.BATTERY and p > 0:
            # Faster and faster: from the device's level at onset to 0 at fail_at.
            remaining_h = max((fail_at - t) / HOUR, 1e-3)
            drain = max(drain, body.battery / remaining_h * (1.0 + p))
        body.battery = max(body.battery - drain * dt_h, 0.5 if t < fail_at else 0.0)
        if profile is not Profile.BATTERY and body.battery < 20.0:
            body.battery = 100.0  # charged (mains or solar): healthy devices never run out
        rssi_target = -62.0 if profile is not Profile.FLAKY_LINK else -62.0 - 25.0 * p
        body.rssi += (rssi_target - body.rssi) * min(1.0, dt_h) * 0.05
        temp_rise = 12.0 * p if profile is Profile.SLOWDOWN else 0.0
        if profile is Profile.BATTERY and p > 0.7:
            temp_rise = 4.0 * (p - 0.7) / 0.3
        if profile is Profile.MEMORY_LEAK and p > 0:
            cycle = leak_cycle_start * (leak_cycle_end / leak_cycle_start) ** p
            mem_leak_per_h = body.mem_full * 0.9 / (cycle / HOUR)
        else:
            mem_leak_per_h = body.mem_full * 0.002
        body.mem = body.mem - mem_leak_per_h * dt_h
        if profile is not Profile.MEMORY_LEAK:
            body.mem = max(body.mem, body.mem_full * 0.8)  # a healthy heap breathes
        # -- what happens now -------------------------------------------------------------
        if profile is Profile.MEMORY_LEAK and body.mem <= body.mem_full * 0.05:
            body.mem = body.mem_full * rng.uniform(0.9, 0.97)
            down = rng.uniform(15.0, 45.0)
            yield Action(t, ActionKind.REBOOT, down_for=down)
            t += down
            continue
        hazard = _reconnect_rate(profile, p, reconnect_every)
        gap = interval * _slowdown(profile, p)
        if rng.random() < gap * hazard:
            down = (
                rng.uniform(0.3, 4.0)
                if profile is not Profile.FLAKY_LINK
                else rng.uniform(0.5, 5.0 + 40.0 * p)
            )
            yield Action(t, ActionKind.DROP, down_for=down)
            t += down
            continue
        if rng.random() < gap / reboot_every:
            down = rng.uniform(15.0, 45.0)
            yield Action(t, ActionKind.REBOOT, down_for=down)
            t += down
            continue
        if rng.random() >= _loss(profile, p):
            metrics = {
                BATTERY: round(body.battery + rng.gauss(0.0, 0.3), 1),
                RSSI: round(body.rssi + rng.gauss(0.0, 2.0), 1),
                TEMPERATURE: round(body.temp + temp_rise + rng.gauss(0.0, 0.4), 2),
                FREE_MEMORY: round(max(body.mem + rng.gauss(0.0, body.mem_full * 0.01), 1.0), 1),
            }
            latency = base_latency * (1.0 + 20.0 * p if profile is Profile.SLOWDOWN else 1.0)
            latency *= rng.uniform(0.7, 1.5)
            yield Action(t, ActionKind.BEAT, metrics=metrics, latency=latency)
        jitter = body.jitter + _extra_jitter(profile, p)
        t += max(gap * (1.0 + rng.gauss(0.0, jitter)), interval * 0.2)


def _progress(t: float, onset: float, fail_at: float) -> float:
    """0 before onset, rising to 1 at fail_at."""
    if t <= onset:
        return 0.0
    return min(1.0, (t - onset) / max(fail_at - onset, 1e-9))


def _hangs(profile: Profile, rng: random.Random) -> bool:
    if profile is Profile.SLOWDOWN:
        return True
    if profile is Profile.SUDDEN_DEATH:
        return rng.random() < 0.5
    return False


def _reconnect_rate(profile: Profile, p: float, healthy_every: float) -> float:
    """Reconnects per second."""
    if profile is Profile.FLAKY_LINK and p > 0:
        # From the device's usual rate up to one every ~4 minutes, exponentially.
        start = 1.0 / (6 * HOUR)
        end = 1.0 / 240.0
        return max(1.0 / healthy_every, start * math.pow(end / start, p))
    return 1.0 / healthy_every


def _slowdown(profile: Profile, p: float) -> float:
    """Gap between heartbeats as a multiple of the interval."""
    if profile is Profile.SLOWDOWN:
        return 1.0 + 1.2 * math.pow(p, 1.5)
    return 1.0


def _extra_jitter(profile: Profile, p: float) -> float:
    if profile is Profile.SLOWDOWN:
        return 0.25 * p
    if profile is Profile.BATTERY and p > 0.6:
        return 0.3 * (p - 0.6) / 0.4  # brown-outs
    if profile is Profile.FLAKY_LINK:
        return 0.15 * p
    return 0.0


def _loss(profile: Profile, p: float) -> float:
    """Probability that a heartbeat never arrives."""
    if profile is Profile.FLAKY_LINK:
        return 0.002 + 0.2 * p
    if profile is Profile.BATTERY and p > 0.6:
        return 0.002 + 0.3 * (p - 0.6) / 0.4
    if profile is Profile.SLOWDOWN:
        return 0.002 + 0.1 * p
    return 0.002
