"""Carry a degradation schedule (``degradation.py``) out on a real connection, in real time.

The fleet simulator gives each degrading device one :class:`DegradationDriver`: its
heartbeats carry the schedule's metrics (battery, RSSI, temperature, free memory), and
its drops, reboots, death or hang happen on the real :class:`~device_client.link.Link`
at the schedule's times. ``speed`` runs the schedule faster than the clock (60: an hour
of degradation per minute) so that a demo shows a battery draining within minutes;
heartbeats keep the device's real interval.

What the live simulator does not reproduce: the slow-down profile's stretched gaps and
growing latency (the SDK beats on a fixed grid, which is the point of the SDK), and lost
single heartbeats. The replay (``monitor/risk/replay.py``) has both.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator, Mapping
from typing import Any

from device_client.degradation import (
    DEGRADING,
    HOUR,
    Action,
    ActionKind,
    DevicePlan,
    device_actions,
    plan_fleet,
)
from device_client.link import Link


class DegradationDriver:
    def __init__(
        self,
        link: Link,
        plan: DevicePlan,
        *,
        loop: asyncio.AbstractEventLoop,
        logger: logging.Logger,
        speed: float = 1.0,
        until: float = 30 * 86_400.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.link = link
        self.plan = plan
        self.loop = loop
        self.log = logger
        self.speed = speed
        self._actions: Iterator[Action] = device_actions(plan, until=until)
        self._metrics: Mapping[str, float] | None = None
        self._started_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.ended = False

    def metrics(self) -> Mapping[str, Any] | None:
        """The link's metrics callback: the schedule's latest reading."""
        return self._metrics

    def start(self) -> None:
        self._started_at = self.loop.time()
        self._advance()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule_time(self) -> float:
        return (self.loop.time() - self._started_at) * self.speed

    def _advance(self) -> None:
        """Take every action due by now; arm a timer for the next one."""
        self._timer = None
        now = self._schedule_time()
        for action in self._actions:
            if action.at > now:
                delay = (action.at - now) / self.speed
                self._timer = self.loop.call_later(delay, self._do, action)
                return
            if self._apply(action):
                return
        self.ended = True

    def _do(self, action: Action) -> None:
        self._timer = None
        if not self._apply(action):
            self._advance()

    def _apply(self, action: Action) -> bool:
        """Carry ``action`` out; True when the device's life is over."""
        kind = action.kind
        device_id = self.link.device_id
        if kind is ActionKind.BEAT:
            self._metrics = action.metrics
            return False
        if kind is ActionKind.DROP:
            self.log.info("device %s (%s): connection drops", device_id, self.plan.profile)
            self.link.drop("simulated degradation")
            return False
        if kind is ActionKind.REBOOT:
            self.log.info("device %s (%s): reboots", device_id, self.plan.profile)
            # Uptime counts from the boot: the monitor sees it go back on the new session.
            self.link.core.started_at = self.loop.time()
            self.link.drop("simulated reboot")
            return False
        self.ended = True
        if kind is ActionKind.DIE:
            self.log.info("device %s (%s): dies", device_id, self.plan.profile)
            self.link.abandon()
        else:
            self.log.info("device %s (%s): hangs, still connected", device_id, self.plan.profile)
            self.link.mute()
        return True


def plan_degradation(
    count: int, *, fraction: float, duration: float, seed: int | None
) -> list[DevicePlan]:
    """Plans for a live fleet: ``fraction`` of it degrading (the four profiles in equal
    shares), failing within ``duration`` schedule seconds; the rest healthy."""
    if duration < 2 * HOUR:
        raise ValueError(
            "degradation needs at least 2 h of schedule time: raise --duration or "
            "--degrade-speed (schedule time = duration x speed)"
        )
    share = fraction / len(DEGRADING)
    return plan_fleet(
        count,
        mix=dict.fromkeys(DEGRADING, share),
        duration=duration,
        seed=seed if seed is not None else random.getrandbits(32),
        settle=duration / 4,
        span=(duration / 10, duration / 2.5),
    )
