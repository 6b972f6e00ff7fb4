"""Fleet simulator: thousands of devices in one process, on one event loop.

Each simulated device is the SDK's own :class:`~device_client.core.DeviceCore` and
:class:`~device_client.link.Link` (one paho client, one socket) — the same code a real
device runs — all driven by a single asyncio loop: no thread per device. Connections are
opened in a ramp (``connect_rate`` per second) so a large fleet does not storm the broker.

Faults, assigned to disjoint random subsets of the fleet (reproducible with ``seed``):

* die: close the socket without DISCONNECT and never come back (the broker publishes the
  will: offline, connection-lost);
* mute: stop heartbeats but stay connected (keepalive pings continue, so there is no
  will — only the missing heartbeats tell);
* flap: drop the connection without DISCONNECT every ``flap_period`` (±50 %), then
  reconnect with the normal backoff and a new session.

With ``degrade_fraction``, devices with none of these faults degrade before they fail,
following the seeded schedule of ``degradation.py`` (a draining battery, a flaky link, a
memory leak, a slow-down; see ``degrade_driver.py``), ``degrade_speed`` times faster than
the clock.

The first fault of each device comes ``fault_after`` seconds after the ramp ends, spread
over one interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from typing_extensions import override

from device_client import protocol
from device_client.backoff import Backoff
from device_client.core import DeviceCore
from device_client.degradation import DEGRADING
from device_client.degrade_driver import DegradationDriver, plan_degradation
from device_client.endpoint import Endpoint
from device_client.errors import ConnectRefused
from device_client.link import Link, LinkListener

DEFAULT_LOGGER = "clawbeat.simulate"


class Fault(StrEnum):
    NONE = "none"
    DIE = "die"
    MUTE = "mute"
    FLAP = "flap"


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """What to simulate. ``endpoint.username`` is ignored: every device logs in as its id."""

    devices: int
    endpoint: Endpoint
    prefix: str = "sim-"
    start: int = 0
    interval: float = 30.0
    jitter: float = 0.0
    keepalive: int = 60
    fw: str | None = "sim-1.0"
    topic_root: str = protocol.DEFAULT_TOPIC_ROOT
    die_fraction: float = 0.0
    mute_fraction: float = 0.0
    flap_fraction: float = 0.0
    # Degradation faults (device_client/degradation.py) on devices with no other fault.
    degrade_fraction: float = 0.0
    degrade_speed: float = 1.0
    fault_after: float | None = None  # default: 3 intervals
    flap_period: float | None = None  # default: 10 intervals
    connect_rate: float = 200.0
    report_every: float = 10.0
    duration: float | None = None
    seed: int | None = None
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    connect_timeout: float = 10.0
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if self.start < 0:
            raise ValueError("start must be >= 0")
        if not self.degrade_speed > 0:
            raise ValueError("degrade_speed must be > 0")
        for name in ("die_fraction", "mute_fraction", "flap_fraction", "degrade_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.die_fraction + self.mute_fraction + self.flap_fraction > 1.0:
            raise ValueError("die, mute and flap fractions add up to more than 1")
        if not self.connect_rate > 0:
            raise ValueError("connect_rate must be > 0")
        if not self.report_every > 0:
            raise ValueError("report_every must be > 0")
        if not 1 <= self.keepalive <= protocol.MAX_KEEPALIVE:
            raise ValueError(f"keepalive must be 1..{protocol.MAX_KEEPALIVE} seconds")
        protocol.validate_interval(self.interval)
        for device_id in (self.device_id(0), self.device_id(self.devices - 1)):
            protocol.validate_device_id(device_id)

    def device_id(self, index: int) -> str:
        """The id of the ``index``-th simulated device (0-based within this fleet)."""
        return f"{self.prefix}{self.start + index:05d}"

    @property
    def first_fault_after(self) -> float:
        return self.fault_after if self.fault_after is not None else 3 * self.interval

    @property
    def flap_every(self) -> float:
        return self.flap_period if self.flap_period is not None else 10 * self.interval


def assign_faults(
    count: int, *, die: float, mute: float, flap: float, rng: random.Random
) -> list[Fault]:
    """Give ``round(count * fraction)`` devices each fault, in disjoint random subsets."""
    faults = [Fault.NONE] * count
    order = list(range(count))
    rng.shuffle(order)
    position = 0
    for fault, fraction in ((Fault.DIE, die), (Fault.MUTE, mute), (Fault.FLAP, flap)):
        n = min(round(count * fraction), count - position)
        for index in order[position : position + n]:
            faults[index] = fault
        position += n
    return faults


@dataclass
class FleetStats:
    devices: int
    connected: int = 0
    heartbeats: int = 0
    connects: int = 0
    losses: int = 0
    refused: int = 0
    stopped: int = 0
    died: int = 0
    muted: int = 0
    flaps: int = 0
    shutdowns_acked: int = 0

    def line(self, rate: float | None = None) -> str:
        per_second = f"heartbeats/s={rate:.1f} " if rate is not None else ""
        return (
            f"fleet: connected={self.connected}/{self.devices} {per_second}"
            f"heartbeats={self.heartbeats} connects={self.connects} losses={self.losses} "
            f"refused={self.refused} died={self.died} muted={self.muted} flaps={self.flaps}"
        )


@dataclass
class _Sim:
    link: Link
    fault: Fault
    connected: bool = False
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Fleet(LinkListener):
    """All simulated devices of one process, on the running event loop."""

    def __init__(
        self,
        options: FleetOptions,
        *,
        loop: asyncio.AbstractEventLoop,
        logger: logging.Logger,
        device_logger: logging.Logger,
    ) -> None:
        self.options = options
        self.loop = loop
        self.log = logger
        self.stats = FleetStats(devices=options.devices)
        self._rng = random.Random(options.seed)
        self._all_stopped = asyncio.Event()
        self._sims: list[_Sim] = []
        faults = assign_faults(
            options.devices,
            die=options.die_fraction,
            mute=options.mute_fraction,
            flap=options.flap_fraction,
            rng=self._rng,
        )
        topics = protocol.Topics(options.topic_root)
        now = loop.time()
        self._drivers: dict[int, DegradationDriver] = {}
        plans = (
            plan_degradation(
                options.devices,
                fraction=options.degrade_fraction,
                # The schedule spans the run; an open-ended run gets two days of it.
                duration=(
                    options.duration * options.degrade_speed if options.duration else 2 * 86_400.0
                ),
                seed=options.seed,
            )
            if options.degrade_fraction > 0
            else []
        )
        for index, fault in enumerate(faults):
            degrades = bool(plans) and fault is Fault.NONE and plans[index].profile in DEGRADING
            core = DeviceCore(
                device_id=options.device_id(index),
                interval=options.interval,
                now=now,
                rng=self._rng,
                jitter=options.jitter,
                fw=options.fw,
                topics=topics,
                backoff=Backoff(base=options.backoff_base, cap=options.backoff_cap, rng=self._rng),
                connect_timeout=options.connect_timeout,
            )
            link = Link(
                core,
                loop=loop,
                endpoint=options.endpoint,
                keepalive=options.keepalive,
                logger=device_logger,
                listener=self,
                metrics=functools.partial(self._degraded_metrics, index) if degrades else None,
                address=index,  # the fleet spreads over a cluster's nodes
            )
            self._sims.append(_Sim(link, fault))
            if degrades:
                self._drivers[index] = DegradationDriver(
                    link, plans[index], loop=loop, logger=logger, speed=options.degrade_speed
                )
        self._by_link = {id(sim.link): sim for sim in self._sims}
        self._stopping = False

    @property
    def ramp_seconds(self) -> float:
        return self.options.devices / self.options.connect_rate

    def faults(self) -> dict[str, Fault]:
        return {sim.link.device_id: sim.fault for sim in self._sims}

    def _degraded_metrics(self, index: int) -> Mapping[str, Any]:
        driver = self._drivers.get(index)
        return (driver.metrics() if driver is not None else None) or {}

    def start(self) -> None:
        """Start the connect ramp and plan the faults."""
        opts = self.options
        for driver in self._drivers.values():
            driver.start()
        for index, sim in enumerate(self._sims):
            sim.link.start(delay=index / opts.connect_rate)
            if sim.fault is not Fault.NONE:
                first = self.ramp_seconds + opts.first_fault_after
                first += self._rng.uniform(0.0, opts.interval)
                sim.timer = self.loop.call_later(first, self._fault, sim)
        # Thousands of long-lived paho clients are what the cyclic GC would scan over and
        # over; none of them is garbage, so move them out of its way.
        gc.collect()
        gc.freeze()
        counts = {f: sum(1 for s in self._sims if s.fault is f) for f in Fault}
        self.log.info(
            "simulating %d devices %s..%s on %s: interval %g s, ramp %.1f s; faults: "
            "die=%d mute=%d flap=%d degrade=%d",
            opts.devices,
            opts.device_id(0),
            opts.device_id(opts.devices - 1),
            opts.endpoint.describe("<device id>"),
            opts.interval,
            self.ramp_seconds,
            counts[Fault.DIE],
            counts[Fault.MUTE],
            counts[Fault.FLAP],
            len(self._drivers),
        )

    def stop(self) -> None:
        """Stop every device gracefully (presence shutdown, clean disconnect)."""
        if self._stopping:
            return
        self._stopping = True
        for driver in self._drivers.values():
            driver.cancel()
        for sim in self._sims:
            if sim.timer is not None:
                sim.timer.cancel()
            sim.link.stop(self.options.stop_timeout)
        self._check_all_stopped()

    async def wait_stopped(self) -> None:
        await self._all_stopped.wait()

    # -- faults -------------------------------------------------------------------------------

    def _fault(self, sim: _Sim) -> None:
        sim.timer = None
        if self._stopping:
            return
        device_id = sim.link.device_id
        if sim.fault is Fault.DIE:
            self.stats.died += 1
            self.log.info(
                "device %s dies (session %s): socket closed without DISCONNECT",
                device_id,
                sim.link.core.session,
            )
            sim.link.abandon()
        elif sim.fault is Fault.MUTE:
            self.stats.muted += 1
            self.log.info("device %s stops beating but stays connected", device_id)
            sim.link.mute()
        elif sim.fault is Fault.FLAP:
            if sim.connected:
                self.stats.flaps += 1
                self.log.info(
                    "device %s flaps (session %s): connection dropped without DISCONNECT",
                    device_id,
                    sim.link.core.session,
                )
                sim.link.drop("simulated flap")
            period = self.options.flap_every * self._rng.uniform(0.5, 1.5)
            sim.timer = self.loop.call_later(period, self._fault, sim)

    # -- LinkListener ----------------------------------------------------------------------------

    @override
    def on_connected(self, link: Link) -> None:
        sim = self._by_link[id(link)]
        if not sim.connected:
            sim.connected = True
            self.stats.connected += 1
        self.stats.connects += 1

    @override
    def on_disconnected(self, link: Link) -> None:
        self._mark_disconnected(self._by_link[id(link)])
        self.stats.losses += 1

    @override
    def on_refused(self, link: Link, error: ConnectRefused, permanent: bool) -> None:
        self.stats.refused += 1

    @override
    def on_heartbeat(self, link: Link) -> None:
        self.stats.heartbeats += 1

    @override
    def on_stopped(self, link: Link, delivered: bool) -> None:
        self._mark_disconnected(self._by_link[id(link)])
        self.stats.stopped += 1
        self.stats.shutdowns_acked += delivered
        self._check_all_stopped()

    def _mark_disconnected(self, sim: _Sim) -> None:
        if sim.connected:
            sim.connected = False
            self.stats.connected -= 1

    def _check_all_stopped(self) -> None:
        if self.stats.stopped >= len(self._sims):
            self._all_stopped.set()


async def run_fleet(
    options: FleetOptions,
    *,
    logger: logging.Logger | None = None,
    device_logger: logging.Logger | None = None,
    handle_signals: bool = True,
) -> FleetStats:
    """Run a simulated fleet until SIGTERM/SIGINT or ``options.duration``; then stop it.

    Args:
        options: what to simulate.
        logger: fleet-level log (default ``clawbeat.simulate``).
        device_logger: per-device log (default ``clawbeat.simulate.device``).
        handle_signals: stop on SIGTERM/SIGINT (main thread only).

    Returns:
        The final counters.
    """
    log = logger or logging.getLogger(DEFAULT_LOGGER)
    loop = asyncio.get_running_loop()
    fleet = Fleet(
        options,
        loop=loop,
        logger=log,
        device_logger=device_logger or logging.getLogger(f"{DEFAULT_LOGGER}.device"),
    )
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    reporter = asyncio.create_task(_report(fleet, log, options.report_every))
    try:
        fleet.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), options.duration)
        # No fleet line from the shutdown itself: its heartbeat rate would be meaningless.
        reporter.cancel()
        log.info("stopping %d devices", options.devices)
        fleet.stop()
        try:
            async with asyncio.timeout(options.stop_timeout + 2.0):
                await fleet.wait_stopped()
        except TimeoutError:
            log.warning("%d devices had not stopped in time", options.devices - fleet.stats.stopped)
    finally:
        reporter.cancel()
        for signum in signals:
            loop.remove_signal_handler(signum)
    stats = fleet.stats
    log.info(
        "fleet stopped: %d/%d shutdowns acknowledged; %s",
        stats.shutdowns_acked,
        options.devices,
        stats.line(),
    )
    return stats


async def _report(fleet: Fleet, log: logging.Logger, every: float) -> None:
    last_count, last_at = fleet.stats.heartbeats, time.monotonic()
    while True:
        await asyncio.sleep(every)
        count, now = fleet.stats.heartbeats, time.monotonic()
        log.info("%s", fleet.stats.line((count - last_count) / max(now - last_at, 1e-9)))
        last_count, last_at = count, now
