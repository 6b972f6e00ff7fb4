"""The monitor's one long-lived MQTT connection (aiomqtt), with a reconnect loop.

The link owns connecting, subscribing, reconnecting with capped exponential backoff and
jitter, the monitor's own will, and a publish queue that survives disconnections. It
knows nothing of liveness: received messages go to a callback, connection changes to
two more, so the service can suspend timeouts while it is blind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_client.backoff import Backoff
from device_client.endpoint import make_ssl_context
from device_client.urls import BrokerUrl
from monitor.connect_failure import ConnectFailure, FailureKind, SubscriptionRefused, describe
from monitor.direct_client import DirectClient, MessageHandler

__all__ = ["LinkOptions", "MessageHandler", "MqttLink", "Outgoing"]

# Publishes awaiting their PUBACK at once (paho's own in-flight limit is set to match).
SEND_WINDOW = 100


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool
    qos: int = 1


# MQTT protocol versions the link speaks: 5 (session expiry, the default) or 3.1.1 for
# brokers without MQTT 5 (nats-server's MQTT gateway).
PROTOCOLS = ("5", "3.1.1")


@dataclass(frozen=True)
class LinkOptions:
    address: BrokerUrl
    client_id: str
    keepalive: int
    subscriptions: tuple[str, ...]
    will_topic: str
    will_payload: bytes
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    backoff_base: float = 0.5
    backoff_cap: float = 15.0
    # Seconds between repeated log lines while connecting keeps failing for one reason.
    report_every: float = 60.0
    # Seconds the broker keeps our session (subscriptions and the QoS 1 messages queued
    # for us) after the connection drops; 0 starts every connection clean.
    session_expiry: int = 0
    # The link probe's topic (monitor/sight.py): subscribed on every connection, and
    # published to by send_probe(); its echoes reach on_message like any message.
    probe_topic: str | None = None
    # "5", or "3.1.1": then every connection starts clean. MQTT 3.1.1 has no session
    # expiry, so a kept session would outlive the monitor, and the broker would queue
    # the whole fleet's messages for it for ever.
    protocol: str = "5"
    # Further nodes of the same broker cluster (same login and TLS): each connection
    # attempt after a loss or a failure goes to the next address.
    fallbacks: tuple[BrokerUrl, ...] = ()


class MqttLink:
    def __init__(
        self,
        options: LinkOptions,
        *,
        on_message: MessageHandler,
        on_connected: Callable[[], Awaitable[None]],
        on_disconnected: Callable[[], None],
        logger: logging.Logger | None = None,
    ) -> None:
        self._opts = options
        if options.protocol not in PROTOCOLS:
            raise ValueError(f"MQTT protocol {options.protocol!r}: use 5 or 3.1.1")
        self._address = options.address  # the node of the latest attempt
        self._refusal: object = None  # the latest SUBACK failure code
        # What every connection subscribes to; set_subscriptions() changes it live.
        self._subscriptions = tuple(options.subscriptions)
        # Filters dropped that a resumed broker session may still hold (see _subscribe).
        self._dropped: set[str] = set()
        # False when the broker refused the probe subscription on the latest connection.
        self.probe_subscribed = False
        # Whether the broker kept our session on the latest connection.
        self.session_present = False
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._log = logger or logging.getLogger("clawbeat.mqtt")
        # Retained status topics only need their latest value, so pending publishes are
        # coalesced per topic while the broker is away: bounded by the number of topics.
        self._pending: dict[str, Outgoing] = {}
        self._event_seq = 0
        self._wakeup = asyncio.Event()
        self._client: DirectClient | None = None
        # The client whose messages go to the handler now (set once _serve attached it).
        self._serving: DirectClient | None = None
        self.connected = False
        self.connects = 0
        # Connection failures since the last successful connection (see _connect_failed).
        self.failed_attempts = 0
        self.last_failure: ConnectFailure | None = None
        self.down_since: float | None = time.time()  # wall clock; None while connected
        self.failures: Counter[FailureKind] = Counter()
        self._reported_at = -math.inf
        self._handler_errors = 0
        self._stopping = False
        # False once the service stops taking messages (shutdown): see stop_intake().
        self._intake_open = True
        self.discarded = 0

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = True,
        qos: int = 1,
        coalesce: bool = True,
    ) -> None:
        """Queue a publish; sent at once when connected, else after reconnecting.

        ``coalesce=False`` for event streams (alerts) where every message matters: each
        one is queued on its own instead of replacing the topic's pending message. The
        caller bounds how many it queues.
        """
        key = topic
        if not coalesce:
            self._event_seq += 1
            key = f"{topic}\x00{self._event_seq}"
        self._pending.pop(key, None)  # re-insert so ordering follows the latest update
        self._pending[key] = Outgoing(topic, payload, retain, qos)
        self._wakeup.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self._opts.address.tls:
            return None
        return make_ssl_context(
            ca_file=self._opts.ca_file, cert_file=self._opts.cert_file, key_file=self._opts.key_file
        )

    async def run(self) -> None:
        """Connect, and reconnect forever, until :meth:`stop`."""
        backoff = Backoff(
            base=self._opts.backoff_base, cap=self._opts.backoff_cap, rng=random.Random()
        )
        addresses = (self._opts.address, *self._opts.fallbacks)
        index = 0
        v5 = self._opts.protocol == "5"
        while not self._stopping:
            addr = self._address = addresses[index]
            # The next attempt, after whatever ends this one, tries the next node.
            index = (index + 1) % len(addresses)
            # MQTT 5 for the session expiry. The first connection of the process starts
            # clean: a new process has no evidence in memory to continue, and restarts
            # recover from the database and the retained topics. Every later one
            # resumes the session, so what the broker queued while it could not deliver
            # to us -- a broken link, a monitor frozen past 1.5 x keepalive -- is read,
            # not thrown away.
            expiry = self._opts.session_expiry if v5 else 0
            connect_props: Properties | None = None
            if v5:
                connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho is untyped here
                connect_props.SessionExpiryInterval = expiry
            client = DirectClient(
                addr.host,
                addr.port,
                username=addr.username,
                password=addr.password,
                identifier=self._opts.client_id,
                keepalive=self._opts.keepalive,
                protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
                clean_session=None if v5 else True,
                # paho refuses a clean_start other than its default under 3.1.1.
                clean_start=not (expiry and self.connects) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
                properties=connect_props,
                will=aiomqtt.Will(
                    self._opts.will_topic, self._opts.will_payload, qos=1, retain=True
                ),
                tls_context=self._tls_context(),
                timeout=10,
                max_queued_outgoing_messages=0,
                max_inflight_messages=SEND_WINDOW,
            )
            # aiomqtt warns about more than this many unanswered calls; the send window
            # keeps up to SEND_WINDOW publishes unanswered on purpose.
            client.pending_calls_threshold = SEND_WINDOW + 10
            try:
                async with client:
                    self._client = client
                    self.session_present = client.session_present
                    await self._subscribe(client)
                    self.connected = True
                    self.connects += 1
                    self._connected_log()
                    backoff.reset()
                    await self._on_connected()
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                if self._stopping:
                    break
                delay = backoff.next_delay()
                if self.connected:
                    self._log.warning(
                        "broker connection to %s lost (%s); reconnecting", self.where, exc
                    )
                    self._mark_down()
                    self.down_since = time.time()
                else:
                    self._connect_failed(describe(exc), delay)
                await asyncio.sleep(delay)
            finally:
                self._handler_errors += client.handler_errors
                self._client = self._serving = None
                self._mark_down()

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return self._subscriptions

    async def set_subscriptions(self, topics: Sequence[str]) -> None:
        """Subscribe to ``topics`` from now on: on the current connection to those added
        and off those dropped, and on every later connection to exactly these."""
        old = self._subscriptions
        self._subscriptions = tuple(dict.fromkeys(topics))
        added = [t for t in self._subscriptions if t not in old]
        dropped = [t for t in old if t not in self._subscriptions]
        self._dropped.difference_update(added)
        self._dropped.update(dropped)
        client = self._client
        if client is None:
            return  # the next connection subscribes to the new set
        try:
            for topic in added:
                if not await self._subscribe_one(client, topic):
                    # As at connection time: reconnect (blind) and subscribe again.
                    self._log.warning(
                        "the broker refused the subscription %s (%s); reconnecting to "
                        "subscribe again",
                        topic,
                        self._refusal,
                    )
                    client.drop()
                    return
            if dropped:
                await client.unsubscribe(dropped)
                self._dropped.difference_update(dropped)
        except aiomqtt.MqttError as exc:
            # The connection is going: the reconnect subscribes to the new set.
            self._log.info("subscription change interrupted (%s); applied on reconnect", exc)

    async def _subscribe(self, client: DirectClient) -> None:
        probe = self._opts.probe_topic
        self.probe_subscribed = False
        for topic in self._subscriptions:
            if not await self._subscribe_one(client, topic):
                raise SubscriptionRefused(topic, self._refusal)
        if probe:
            self.probe_subscribed = await self._subscribe_one(client, probe)
        if self._dropped:
            # A resumed session still holds what was dropped while we were away.
            if client.session_present:
                await client.unsubscribe(sorted(self._dropped))
            self._dropped.clear()

    async def _subscribe_one(self, client: DirectClient, topic: str) -> bool:
        """Subscribe; False (and said why) if the broker refused."""
        codes = await client.subscribe(topic, qos=1)
        refused = [c for c in codes if getattr(c, "is_failure", False)]
        if not refused:
            return True
        self._refusal = refused[0]
        if topic == self._opts.probe_topic:
            self._log.warning(
                "the broker refused the link probe subscription %s (%s): a cut link "
                "is noticed by keepalive only; let the monitor read and write it",
                topic,
                refused[0],
            )
        return False

    def send_probe(self, payload: bytes) -> bool:
        """Publish a link probe now (QoS 1, not retained); False when not connected."""
        client, topic = self._client, self._opts.probe_topic
        if client is None or topic is None or not self.connected:
            return False
        return client.publish_nowait(topic, payload, qos=1)

    @property
    def where(self) -> str:
        """The broker and login this link uses, for messages (never the password)."""
        return self._address.redacted()

    def _connected_log(self) -> None:
        if self.failed_attempts:
            self._log.info(
                "connected to broker %s after %d failed attempts over %.0f s",
                self.where,
                self.failed_attempts,
                time.time() - (self.down_since or time.time()),
            )
        else:
            self._log.info(
                "connected to broker %s (%s)",
                self.where,
                "session resumed" if self.session_present else "new session",
            )
        self.failed_attempts = 0
        self.last_failure = None
        self.down_since = None
        self._reported_at = -math.inf

    def _connect_failed(self, failure: ConnectFailure, delay: float) -> None:
        """A connection attempt failed: count it, and say so clearly, but not every time.

        The first failure and every change of reason are logged at once; a reason that
        persists is repeated every ``report_every`` seconds with the attempts so far, so
        a log read an hour later still says what is wrong.
        """
        self.failed_attempts += 1
        self.failures[failure.kind] += 1
        if self.down_since is None:
            self.down_since = time.time()
        changed = self.last_failure is None or self.last_failure.kind is not failure.kind
        self.last_failure = failure
        now = time.monotonic()
        if not changed and now - self._reported_at < self._opts.report_every:
            self._log.debug("connect attempt %d failed: %s", self.failed_attempts, failure)
            return
        self._reported_at = now
        never = "" if self.connects else "; it has never connected"
        self._log.warning(
            "cannot connect to broker %s: %s (%d failed attempts over %.0f s%s); "
            "retrying in %.1f s, and every %g s at most",
            self.where,
            failure,
            self.failed_attempts,
            time.time() - self.down_since,
            never,
            delay,
            self._opts.backoff_cap,
        )

    def _mark_down(self) -> None:
        if self.connected:
            self.connected = False
            self._on_disconnected()

    def stop_intake(self) -> None:
        """Take no more messages: those that arrive from now on are acknowledged and dropped.

        The service calls this first when it stops, before it closes the write-behind:
        a heartbeat handled after that would have nowhere to go (a ``WriterClosed``
        traceback per message). The connection stays up, because the last publishes
        (status topics, the monitor's offline presence) still need their PUBACKs.
        """
        self._intake_open = False
        if self._client is not None:
            self._client.deliver_to(self._discard)

    def deliver_to(self, on_message: MessageHandler) -> None:
        """Hand every message from the next one on to ``on_message`` (the service swaps
        handlers when what it listens to changes, without a connection's interruption)."""
        self._on_message = on_message
        if self._serving is not None and self._intake_open:
            self._serving.deliver_to(on_message)

    def _discard(
        self, _topic: str, _payload: bytes, _retained: bool, _now: float, _wall: float
    ) -> None:
        self.discarded += 1

    @property
    def handler_errors(self) -> int:
        """Messages whose handler raised (each logged, rate-limited, and dropped)."""
        return self._handler_errors + (self._client.handler_errors if self._client else 0)

    async def _serve(self, client: DirectClient) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._send_loop(client, group))
                # From here messages go straight from paho's read loop to the handler,
                # those held since subscribing first (see DirectClient for why).
                client.deliver_to(self._on_message if self._intake_open else self._discard)
                self._serving = client
                # Nothing is ever queued for the iterator now; it is kept because it is
                # aiomqtt's public way of learning that the connection has ended.
                async for _ in client.messages:
                    pass
                raise aiomqtt.MqttError("message stream ended")
        except* aiomqtt.MqttError as lost:
            # The TaskGroup wraps errors in an ExceptionGroup, which run()'s reconnect
            # loop would not catch: a broker restart would end the monitor. Unwrap it.
            first = lost.exceptions[0]
            raise first from first.__cause__

    async def _send_loop(self, client: DirectClient, group: asyncio.TaskGroup) -> None:
        # Up to SEND_WINDOW publishes await their PUBACK at once. One at a time, each
        # status publish cost a round trip to the broker: a mass outage of 100,000
        # devices took minutes to reach the status topics.
        window = asyncio.Semaphore(SEND_WINDOW)
        inflight: dict[str, Outgoing] = {}
        # What was queued while disconnected goes out now, not at the next publish.
        self._wakeup.set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            for key, item in list(self._pending.items()):
                if inflight.get(key) is item:
                    continue
                await window.acquire()
                if self._pending.get(key) is not item:
                    # Replaced (or sent) while we waited; a replacement set the wakeup.
                    window.release()
                    continue
                inflight[key] = item
                group.create_task(self._send_one(client, key, item, window, inflight))

    async def _send_one(
        self,
        client: DirectClient,
        key: str,
        item: Outgoing,
        window: asyncio.Semaphore,
        inflight: dict[str, Outgoing],
    ) -> None:
        try:
            # No deadline on the broker's PUBACK: while it feeds us a backlog it can take
            # many seconds (measured: 6 s+ behind 10k heartbeats/s), and timing out would
            # drop a live connection and the backlog with it. A dead connection is caught
            # by keepalive, which ends _serve and cancels this.
            await client.publish(
                item.topic, item.payload, qos=item.qos, retain=item.retain, timeout=math.inf
            )
            # Only drop it once the broker has it: a failed publish stays pending. A newer
            # message for the same topic, queued meanwhile, stays too and is sent after
            # this one (paho keeps publish order on the connection).
            if self._pending.get(key) is item:
                del self._pending[key]
        finally:
            if inflight.get(key) is item:
                del inflight[key]
            window.release()

    async def flush(self, within: float = 5.0) -> bool:
        """Wait until every queued publish has gone out (or ``within`` seconds pass)."""
        deadline = time.monotonic() + within
        # Polling is fine here: this runs once, at shutdown.
        while self._pending and self.connected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return not self._pending

    async def stop(self, final: Outgoing | None = None) -> None:
        """Publish ``final`` (e.g. monitor offline) if connected, then disconnect."""
        self._stopping = True
        client = self._client
        if client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                if final is not None:
                    await asyncio.wait_for(
                        client.publish(
                            final.topic, final.payload, qos=final.qos, retain=final.retain
                        ),
                        5,
                    )
            if self._opts.session_expiry and self._opts.protocol == "5":
                await client.end_session(within=2)
