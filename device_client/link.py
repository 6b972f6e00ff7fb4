"""Carry out a :class:`~device_client.core.DeviceCore` on a real MQTT connection.

paho-mqtt runs in its external-loop mode: the link registers paho's socket with an
asyncio event loop (``add_reader``/``add_writer``) and calls ``loop_read``, ``loop_write``
and ``loop_misc`` itself, and all timing comes from one ``call_at`` timer per link. No
link owns a thread, so one event loop carries one device (the SDK, on its own thread) or
thousands (the simulator).

Everything here runs on the event loop's thread; paho is not called from anywhere else.

Known limit: paho opens the TCP connection (and does the TLS handshake) with blocking
calls bounded by ``connect_timeout``. Against a reachable broker that takes well under a
millisecond per device; against an address that silently drops packets it stalls the
loop for up to ``connect_timeout`` per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from device_client.core import DeviceCore, Phase
from device_client.endpoint import Endpoint
from device_client.errors import ConnectRefused
from device_client.log_throttle import LogThrottle

MetricsCallback = Callable[[], Mapping[str, Any]]

# CONNACK refusals that a retry cannot fix: client id rejected, bad username or password,
# not authorised, bad authentication method (MQTT 5 numbering; paho maps 3.1.1 codes).
PERMANENT_REFUSALS: Final = frozenset({0x85, 0x86, 0x87, 0x8C})

# How many reads to spend draining a socket we shut down ourselves before leaving the
# rest to the event loop (EOF always follows whatever the broker had already sent).
_DRAIN_READS: Final = 8


class LinkListener:
    """Hooks a :class:`Link` calls on its loop thread. The defaults do nothing."""

    def on_first_outcome(self, link: Link, error: BaseException | None) -> None:
        """The first connection attempt ended: connected (None) or failed."""

    def on_connected(self, link: Link) -> None:
        """CONNACK accepted; presence online is on its way."""

    def on_disconnected(self, link: Link) -> None:
        """A connection that had been accepted is gone."""

    def on_refused(self, link: Link, error: ConnectRefused, permanent: bool) -> None:
        """The broker refused a connection attempt."""

    def on_heartbeat(self, link: Link) -> None:
        """A heartbeat was handed to paho."""

    def on_stopped(self, link: Link, delivered: bool) -> None:
        """The link stopped; ``delivered`` says whether presence shutdown was acknowledged."""


class Link:
    """One device: its core, its paho client, its socket on the event loop.

    Args:
        core: the device's protocol state.
        loop: the event loop that drives this link (all methods must run on it).
        endpoint: where to connect; ``endpoint.username`` None means the device id.
        keepalive: MQTT keepalive, seconds.
        logger: where to log; device ids are in every message.
        metrics: called before each heartbeat for its ``metrics`` object.
        listener: lifecycle hooks.
        address: which of ``endpoint.addresses`` to try first (taken modulo their
            number, so a fleet passes each device's index to spread over the nodes).
    """

    def __init__(
        self,
        core: DeviceCore,
        *,
        loop: asyncio.AbstractEventLoop,
        endpoint: Endpoint,
        keepalive: int,
        logger: logging.Logger,
        metrics: MetricsCallback | None = None,
        listener: LinkListener | None = None,
        address: int = 0,
    ) -> None:
        self.core = core
        self.loop = loop
        self.endpoint = endpoint
        self.username = endpoint.username or core.device_id
        self.log = logger
        self._metrics = metrics
        self._listener = listener or LinkListener()
        # paho's keepalive check must run often enough to send PINGREQ well inside the
        # broker's 1.5 x keepalive limit when no heartbeats flow (a muted device).
        self._misc_period = min(max(keepalive / 4, 0.1), 5.0)
        self._next_misc = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._sock: Any = None
        self._writer_sock: Any = None
        self._refusal: tuple[str, int] | None = None
        self._close_reason: str | None = None  # why we closed the socket ourselves
        self._shutdown_mid: int | None = None
        self._shutdown_acked = False
        self._first_reported = False
        self._finished = False
        self._throttle = LogThrottle(period=60.0)
        self._address = address % len(endpoint.addresses)
        self._attempted = False

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=core.device_id,
            protocol=MQTTProtocolVersion.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.username_pw_set(self.username, endpoint.password)
        if endpoint.ssl_context is not None:
            client.tls_set_context(endpoint.ssl_context)
        client.connect_timeout = core.connect_timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        # Only records host, port and keepalive; every attempt goes through reconnect(),
        # called by us with a fresh will each time.
        host, port = endpoint.addresses[self._address]
        client.connect_async(host, port, keepalive)
        self._keepalive = keepalive
        self.client = client

    # -- public (loop thread) -------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self.core.device_id

    @property
    def finished(self) -> bool:
        return self._finished

    def start(self, delay: float = 0.0) -> None:
        """Make the first connection attempt ``delay`` seconds from now."""
        self.core.start(self.loop.time(), delay=delay)
        self._arm()

    def stop(self, timeout: float) -> None:
        """Announce shutdown, wait (at most ``timeout``) for its PUBACK, then disconnect.

        If the shutdown presence cannot be confirmed in time the connection is closed
        *without* DISCONNECT, so the broker publishes the will: a device that could not
        say goodbye is reported offline rather than left "online" in the retained topic.
        """
        if self._finished:
            return
        message = self.core.begin_stop(self.loop.time(), timeout)
        if message is not None:
            info = self.client.publish(
                message.topic, message.payload, qos=message.qos, retain=message.retain
            )
            self._shutdown_mid = info.mid
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._drop()
        elif self.core.phase is Phase.STOPPED:
            if self.client.socket() is not None:
                self._drop()  # mid-connect: nothing to announce on
            else:
                self._finish()
        self._after_io()

    def abandon(self) -> None:
        """Die: close the socket without DISCONNECT and never reconnect (simulation)."""
        if self._finished:
            return
        self.core.abandon()
        if self.client.socket() is not None:
            self._drop()
        else:
            self._finish()
        self._after_io()

    def drop(self, why: str = "dropped on purpose") -> None:
        """Lose the connection ungracefully; the device reconnects as after any loss."""
        if self.client.socket() is not None:
            self._close_reason = why
            self._drop()
            self._after_io()

    def mute(self) -> None:
        """Stop heartbeats but keep the connection (pings continue)."""
        self.core.mute()

    # -- paho callbacks (called from inside loop_read/loop_write/loop_misc) -----------------

    def _on_socket_open(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        self._sock = sock
        self._next_misc = self.loop.time() + self._misc_period
        self.loop.add_reader(sock, self._on_readable)

    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        # paho calls this just before closing the socket: unregister while the fd is valid.
        self.loop.remove_reader(sock)
        if self._writer_sock is not None:
            self.loop.remove_writer(self._writer_sock)
            self._writer_sock = None
        self._sock = None

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            # paho closes the socket right after this returns and reports it through
            # on_disconnect, which is where the attempt is accounted for.
            self._refusal = (reason.getName(), reason.value)
            return
        if self.core.phase is not Phase.CONNECTING:
            return  # stopped while the CONNACK was in flight; the socket is being closed
        now = self.loop.time()
        online = self.core.connected_now(now)
        client.publish(online.topic, online.payload, qos=online.qos, retain=online.retain)
        client.subscribe(self.core.config_topic, qos=1)
        self.log.info(
            "device %s connected to %s, session %s",
            self.device_id,
            self.endpoint.describe(self.username, self._address),
            self.core.session,
        )
        self._listener.on_connected(self)
        self._report_first(None)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        now = self.loop.time()
        was = self.core.phase
        refusal, self._refusal = self._refusal, None
        why = self._close_reason or _describe_loss(flags, reason)
        self._close_reason = None
        delay = self.core.connection_lost(now)
        if delay is None:
            if self.core.phase is Phase.STOPPED:
                self._finish()
            return
        if refusal is not None:
            name, code = refusal
            refused = ConnectRefused(self.device_id, self.username, name, code)
            self._listener.on_refused(self, refused, code in PERMANENT_REFUSALS)
            self._report_first(refused)
            # The listener may have given up (the SDK raises a refused first login to its
            # caller instead); otherwise say loudly that we keep trying.
            if not self._finished:
                self.log.error("%s; retrying in %.1f s", refused, delay)
        elif was is Phase.CONNECTED:
            self.log.warning(
                "device %s lost its connection (%s); reconnecting in %.1f s",
                self.device_id,
                why,
                delay,
            )
            self._listener.on_disconnected(self)
        else:
            error = ConnectionError(f"connection closed before CONNACK ({why})")
            self._attempt_failed(error, delay)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.core.config_topic:
            return
        now = self.loop.time()
        outcome = self.core.apply_config(bytes(msg.payload), now)
        if outcome.problem is not None:
            if self._throttle.allow("config", now):
                self.log.warning(
                    "device %s ignored a malformed config message (%s); interval stays %g s%s",
                    self.device_id,
                    outcome.problem,
                    outcome.interval,
                    self._throttle.note("config"),
                )
        elif outcome.changed:
            self.log.info(
                "device %s now beats every %g s (%s)",
                self.device_id,
                outcome.interval,
                "config cleared, own interval" if outcome.cleared else "config",
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        _userdata: Any,
        mid: int,
        _reason: ReasonCode,
        _properties: Properties,
    ) -> None:
        if mid == self._shutdown_mid and self.core.phase is Phase.STOPPING:
            self._shutdown_acked = True
            client.disconnect()

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _mid: int,
        reason_codes: list[ReasonCode],
        _properties: Properties,
    ) -> None:
        if any(code.is_failure for code in reason_codes):
            self.log.warning(
                "device %s: the broker refused the subscription to %s; interval changes "
                "from the monitor will not arrive (check the broker ACL)",
                self.device_id,
                self.core.config_topic,
            )

    # -- event loop callbacks ----------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            rc = self.client.loop_read()
            # TLS may hold whole MQTT packets in its buffer, invisible to select().
            sock = self.client.socket()
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and _tls_pending(sock):
                rc = self.client.loop_read()
                sock = self.client.socket()
        # A bug (ours or paho's) must cost this one connection, not the whole event loop.
        except Exception as exc:  # noqa: BLE001
            self._crashed("reading", exc)
        self._after_io()

    def _on_writable(self) -> None:
        try:
            self.client.loop_write()
        except Exception as exc:  # noqa: BLE001 - as in _on_readable
            self._crashed("writing", exc)
        self._after_io()

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        core = self.core
        try:
            phase = core.phase
            if phase is Phase.WAITING:
                if core.next_connect_at is not None and now >= core.next_connect_at:
                    self._connect(now)
            elif phase is Phase.CONNECTING:
                if core.connect_deadline is not None and now >= core.connect_deadline:
                    self._connect_timed_out(now)
            elif phase is Phase.CONNECTED:
                if core.beat_due(now):
                    self._beat(now)
            elif (
                phase is Phase.STOPPING
                and core.stop_deadline is not None
                and now >= core.stop_deadline
            ):
                self.log.warning(
                    "device %s: presence shutdown not acknowledged in time; closing "
                    "without DISCONNECT so the broker's will reports the device offline",
                    self.device_id,
                )
                self._close_reason = "shutdown not acknowledged"
                self._drop()
            if self._sock is not None and now >= self._next_misc:
                self._next_misc = now + self._misc_period
                self.client.loop_misc()
        except Exception as exc:  # noqa: BLE001 - as in _on_readable
            self._crashed("on its timer", exc)
        self._after_io()

    # -- internals -------------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        addresses = self.endpoint.addresses
        if self._attempted and len(addresses) > 1:
            # Every attempt after the first goes to the next node: the one we were on is
            # lost or refused us, and another node of the cluster serves us as well.
            self._address = (self._address + 1) % len(addresses)
            host, port = addresses[self._address]
            self.client.connect_async(host, port, self._keepalive)
        self._attempted = True
        will = self.core.begin_connect(now)
        self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        # QoS 1 messages of the previous session that the broker never acknowledged would
        # be replayed after the new CONNACK, naming a dead session; drop them.
        self.client.drop_out_messages()
        try:
            self.client.reconnect()
        except (OSError, ValueError) as exc:  # ssl.CertificateError is a ValueError
            delay = self.core.connection_lost(now)
            if delay is not None:
                self._attempt_failed(exc, delay)

    def _connect_timed_out(self, now: float) -> None:
        why = f"no CONNACK within {self.core.connect_timeout:g} s"
        if self.client.socket() is not None:
            self._close_reason = why
            self._drop()  # paho reports the closed socket through on_disconnect
        else:
            delay = self.core.connection_lost(now)
            if delay is not None:
                self._attempt_failed(TimeoutError(why), delay)

    def _attempt_failed(self, error: BaseException, delay: float) -> None:
        # Every failure is worth a line: the backoff cap (30 s by default) already bounds
        # how often this can happen.
        self.log.warning(
            "device %s cannot connect to %s (%s); retrying in %.1f s",
            self.device_id,
            self.endpoint.describe(self.username, self._address),
            error,
            delay,
        )
        self._report_first(error)

    def _beat(self, now: float) -> None:
        metrics: Mapping[str, Any] | None = None
        if self._metrics is not None:
            try:
                metrics = self._metrics()
            # Application code: whatever it raises must not stop the heartbeat.
            except Exception:
                if self._throttle.allow("metrics", now):
                    self.log.exception(
                        "device %s: metrics callback failed; heartbeat sent without metrics%s",
                        self.device_id,
                        self._throttle.note("metrics"),
                    )
        beat = self.core.heartbeat(now, time.time(), metrics)
        if beat.metrics_problem is not None and self._throttle.allow("encode", now):
            self.log.warning(
                "device %s: metrics left out of the heartbeat (%s)%s",
                self.device_id,
                beat.metrics_problem,
                self._throttle.note("encode"),
            )
        message = beat.message
        self.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        self._listener.on_heartbeat(self)

    def _drop(self) -> None:
        """Close the connection without DISCONNECT: to the broker, a lost connection."""
        sock = self.client.socket()
        if not isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
            return
        # OSError: already reset by the peer; paho's read below notices either way.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        # paho sees EOF on its next read, closes the socket and calls on_disconnect.
        for _ in range(_DRAIN_READS):
            if self.client.socket() is None:
                break
            self.client.loop_read()

    def _crashed(self, doing: str, exc: Exception) -> None:
        self.log.error("device %s: unexpected error while %s", self.device_id, doing, exc_info=exc)
        try:
            self._drop()
        except Exception as again:  # the loop must survive this link
            self.log.error(
                "device %s: could not drop the connection", self.device_id, exc_info=again
            )

    def _after_io(self) -> None:
        self._sync_writer()
        self._arm()

    def _sync_writer(self) -> None:
        # paho writes at once when it can; only a full socket buffer (or a packet queued
        # inside a callback) leaves data behind, and only then do we watch for writability.
        sock = self.client.socket()
        want = isinstance(sock, socket.socket) and self.client.want_write()
        if want and self._writer_sock is None:
            assert isinstance(sock, socket.socket)
            self.loop.add_writer(sock, self._on_writable)
            self._writer_sock = sock
        elif not want and self._writer_sock is not None:
            self.loop.remove_writer(self._writer_sock)
            self._writer_sock = None

    def _arm(self) -> None:
        if self._finished:
            return
        deadline = self.core.next_deadline()
        if self._sock is not None:
            deadline = self._next_misc if deadline is None else min(deadline, self._next_misc)
        if deadline is None:
            return
        # An earlier timer already pending will re-arm when it fires; keep it.
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._on_timer)
        self._timer_at = deadline

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._report_first(ConnectionError("stopped before connecting"))
        self._listener.on_stopped(self, self._shutdown_acked)

    def _report_first(self, error: BaseException | None) -> None:
        if not self._first_reported:
            self._first_reported = True
            self._listener.on_first_outcome(self, error)


def _tls_pending(sock: Any) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _describe_loss(flags: mqtt.DisconnectFlags, reason: ReasonCode) -> str:
    # paho reports a plain EOF or socket error as "Unspecified error"; say what it was.
    name = reason.getName()
    if flags.is_disconnect_packet_from_server:
        return f"the broker sent DISCONNECT: {name}"
    if name == "Unspecified error":
        return "connection closed"
    return name.lower()
