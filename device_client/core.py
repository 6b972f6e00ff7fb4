"""One device's protocol logic, free of threads, sockets and clocks.

The core decides *what* to send and *when*; a shell (:mod:`device_client.link`) carries
it out on a real MQTT connection. Time is passed in (a monotonic clock, plus the wall
clock for the heartbeat's ``ts``), so the same core runs one device in the SDK's thread
and thousands in the simulator's single event loop, and unit tests drive it step by step.

Rules (protocol v1, ``docs/protocol.md``):

* Every connection attempt gets a new session id, and the will naming it is produced
  *before* the attempt, so a will always names the connection it belongs to.
* After CONNACK: presence ``online`` (QoS 1, retained), subscribe to the own config topic
  (QoS 1), heartbeats from ``seq`` 0, the first one at once.
* Heartbeat timing is :class:`~device_client.schedule.BeatSchedule`'s.
* A config message changes the interval within one beat; an empty (cleared) retained
  config restores the device's own interval; a malformed one changes nothing.
* A failed attempt or a lost connection waits a :class:`~device_client.backoff.Backoff`
  delay before the next attempt, forever. The backoff is reset only by a connection that
  stayed up for ``stable_after`` seconds: a broker that accepts and then drops a device
  at once (a duplicate client id, an ACL kick) must not turn into a tight reconnect loop.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from device_client import protocol
from device_client.backoff import Backoff
from device_client.schedule import BeatSchedule

MAX_FW_LENGTH = 64


class Phase(StrEnum):
    IDLE = "idle"  # built, not started
    WAITING = "waiting"  # waiting to make the next connection attempt
    CONNECTING = "connecting"  # CONNECT sent, waiting for CONNACK
    CONNECTED = "connected"
    STOPPING = "stopping"  # shutdown presence sent, waiting for the broker's PUBACK
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Beat:
    message: Publish
    seq: int
    metrics_problem: str | None = None  # why the metrics were left out, if they were


@dataclass(frozen=True, slots=True)
class ConfigOutcome:
    interval: float  # the interval in force afterwards
    changed: bool
    cleared: bool = False  # an empty retained config: back to the device's own interval
    problem: str | None = None  # the payload was refused; nothing changed


class DeviceCore:
    """Session, sequence, heartbeat schedule, config and reconnect state of one device.

    Args:
        device_id: the device id (also the MQTT client id and, by default, username).
        interval: the device's own heartbeat interval, seconds.
        now: the monotonic time the device "booted" (the origin of ``uptime``).
        rng: random source for jitter and backoff.
        jitter: extra random delay per heartbeat, seconds (at most half the interval).
        fw: firmware version string reported in heartbeats.
        topics: the topic tree (root ``clawbeat/v1`` by default).
        backoff: reconnect backoff; 0.5 s doubling to 30 s if omitted.
        connect_timeout: seconds to wait for CONNACK before giving the attempt up.
        stable_after: a connection that lasted this long resets the backoff.
    """

    def __init__(
        self,
        *,
        device_id: str,
        interval: float,
        now: float,
        rng: random.Random,
        jitter: float = 0.0,
        fw: str | None = None,
        topics: protocol.Topics | None = None,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        stable_after: float = 10.0,
    ) -> None:
        self.device_id = protocol.validate_device_id(device_id)
        self.default_interval = protocol.validate_interval(interval)
        if not jitter >= 0:
            raise ValueError(f"jitter must be >= 0 seconds, got {jitter}")
        if fw is not None and len(fw) > MAX_FW_LENGTH:
            raise ValueError(f"fw must be at most {MAX_FW_LENGTH} characters")
        if not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be > 0 seconds, got {connect_timeout}")
        self.fw = fw
        topics = topics or protocol.Topics()
        self.heartbeat_topic = topics.heartbeat(device_id)
        self.presence_topic = topics.presence(device_id)
        self.config_topic = topics.config(device_id)
        self.schedule = BeatSchedule(self.default_interval, jitter=jitter, rng=rng)
        self.backoff = backoff or Backoff(rng=rng)
        self.connect_timeout = connect_timeout
        self.stable_after = stable_after
        self.started_at = now

        self.phase = Phase.IDLE
        self.session: str | None = None
        self.seq = 0
        self.muted = False
        self.next_connect_at: float | None = None
        self.connect_deadline: float | None = None
        self.stop_deadline: float | None = None
        self.connected_at: float | None = None
        self.attempts = 0  # connection attempts made, ever
        self.connections = 0  # successful connections, ever

    @property
    def interval(self) -> float:
        """The interval in force (the device's own, or the last one configured)."""
        return self.schedule.interval

    @property
    def connected(self) -> bool:
        return self.phase is Phase.CONNECTED

    # -- connection lifecycle -------------------------------------------------------------

    def start(self, now: float, *, delay: float = 0.0) -> None:
        """Plan the first connection attempt ``delay`` seconds from ``now``."""
        if self.phase is not Phase.IDLE:
            raise RuntimeError(f"start() in phase {self.phase}")
        self.phase = Phase.WAITING
        self.next_connect_at = now + delay

    def begin_connect(self, now: float) -> Publish:
        """Start an attempt: a new session; returns the will to set before connecting."""
        if self.phase is not Phase.WAITING:
            raise RuntimeError(f"begin_connect() in phase {self.phase}")
        self.phase = Phase.CONNECTING
        self.session = protocol.new_session()
        self.attempts += 1
        self.next_connect_at = None
        self.connect_deadline = now + self.connect_timeout
        return Publish(self.presence_topic, protocol.will(self.session))

    def connected_now(self, now: float) -> Publish:
        """CONNACK accepted: returns presence ``online``; heartbeats start at seq 0 now.

        The shell subscribes to :attr:`config_topic` after publishing this.
        """
        if self.phase is not Phase.CONNECTING or self.session is None:
            raise RuntimeError(f"connected_now() in phase {self.phase}")
        self.phase = Phase.CONNECTED
        self.connections += 1
        self.connect_deadline = None
        self.connected_at = now
        self.seq = 0
        self.schedule.start(now)
        return Publish(self.presence_topic, protocol.online(self.session))

    def connection_lost(self, now: float) -> float | None:
        """The attempt failed or the connection dropped.

        Returns the delay before the next attempt, or None when no attempt will follow
        (the device is stopping or stopped).
        """
        if (
            self.phase is Phase.CONNECTED
            and self.connected_at is not None
            and now - self.connected_at >= self.stable_after
        ):
            self.backoff.reset()
        self.schedule.stop()
        self.connect_deadline = None
        self.connected_at = None
        if self.phase is Phase.IDLE:
            return None
        if self.phase in (Phase.STOPPING, Phase.STOPPED):
            self.phase = Phase.STOPPED
            self.stop_deadline = None
            return None
        self.phase = Phase.WAITING
        delay = self.backoff.next_delay()
        self.next_connect_at = now + delay
        return delay

    def begin_stop(self, now: float, timeout: float) -> Publish | None:
        """Stop: returns presence ``shutdown`` to publish if connected, else None.

        When a message is returned the shell waits for its PUBACK (at most until
        :attr:`stop_deadline`) and then disconnects; otherwise the device is stopped.
        """
        if self.phase is Phase.CONNECTED and self.session is not None:
            self.phase = Phase.STOPPING
            self.schedule.stop()
            self.stop_deadline = now + timeout
            return Publish(self.presence_topic, protocol.shutdown(self.session))
        if self.phase is not Phase.STOPPING:
            self.abandon()
        return None

    def abandon(self) -> None:
        """Stop without announcing it (a crash, as far as the broker can tell)."""
        self.phase = Phase.STOPPED
        self.schedule.stop()
        self.next_connect_at = self.connect_deadline = self.stop_deadline = None

    def mute(self) -> None:
        """Stay connected but send no more heartbeats (a hung application)."""
        self.muted = True

    # -- heartbeats and config --------------------------------------------------------------

    def beat_due(self, now: float) -> bool:
        return self.phase is Phase.CONNECTED and not self.muted and self.schedule.is_due(now)

    def heartbeat(self, now: float, wall: float, metrics: Mapping[str, Any] | None) -> Beat:
        """Build the heartbeat for the current slot and advance the schedule.

        Metrics that cannot be encoded (not JSON, not finite, too large) are left out and
        the reason returned: a heartbeat without metrics still proves the device is alive.
        """
        if self.phase is not Phase.CONNECTED or self.session is None:
            raise RuntimeError(f"heartbeat() in phase {self.phase}")
        hb = protocol.Heartbeat(
            seq=self.seq,
            session=self.session,
            interval=self.interval,
            ts=wall,
            uptime=max(0.0, now - self.started_at),
            fw=self.fw,
        )
        problem: str | None = None
        payload: bytes | None = None
        if metrics is not None:
            try:
                payload = protocol.encode_heartbeat(
                    msgspec.structs.replace(hb, metrics=dict(metrics))
                )
            # The mapping comes from application code and may raise anything while being
            # copied or encoded; none of it may cost the heartbeat itself.
            except Exception as exc:  # noqa: BLE001
                problem = f"{type(exc).__name__}: {exc}"
        if payload is None:
            payload = protocol.encode_heartbeat(hb)
        beat = Beat(Publish(self.heartbeat_topic, payload), hb.seq, problem)
        self.seq += 1
        self.schedule.sent(now)
        return beat

    def apply_config(self, payload: bytes, now: float) -> ConfigOutcome:
        """Apply a message from the config topic (untrusted network input: never raises)."""
        if not payload:
            changed = self.interval != self.default_interval
            if changed:
                self.schedule.set_interval(self.default_interval, now)
            return ConfigOutcome(self.interval, changed, cleared=True)
        try:
            update = protocol.decode_config(payload)
        except protocol.ProtocolError as exc:
            return ConfigOutcome(self.interval, changed=False, problem=str(exc))
        if update.interval == self.interval:
            return ConfigOutcome(self.interval, changed=False)
        self.schedule.set_interval(update.interval, now)
        return ConfigOutcome(self.interval, changed=True)

    # -- timing --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The monotonic time the shell must call back at (None: nothing timed)."""
        if self.phase is Phase.WAITING:
            return self.next_connect_at
        if self.phase is Phase.CONNECTING:
            return self.connect_deadline
        if self.phase is Phase.CONNECTED:
            return None if self.muted else self.schedule.due_at
        if self.phase is Phase.STOPPING:
            return self.stop_deadline
        return None
