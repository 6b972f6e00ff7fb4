"""The device SDK: :class:`Device` reports presence and heartbeats (protocol v1).

Five lines from a plain script::

    from device_client import Device

    with Device(device_id="pump-7", broker="mqtt://pump-7:secret@broker.example:1883"):
        run_the_pump()  # heartbeats go out in the background meanwhile

A device runs one asyncio event loop on a daemon thread of its own (``start()``) or on
the calling thread (``run_forever()``); paho-mqtt is driven from that loop only, and the
public methods hand work to it, so they are safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from typing_extensions import override

from device_client import protocol
from device_client.backoff import Backoff
from device_client.core import DeviceCore
from device_client.endpoint import resolve_endpoint
from device_client.errors import ConnectRefused
from device_client.link import PERMANENT_REFUSALS, Link, LinkListener
from device_client.urls import BrokerUrl

DEFAULT_INTERVAL: Final = 30.0
DEFAULT_KEEPALIVE: Final = 60
DEFAULT_LOGGER: Final = "clawbeat.device"

# A Device is started once: restarting would have to rebuild paho and the loop anyway, and
# a fresh Device says that more clearly.
_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"


class Device:
    """A device that keeps the clawbeat monitor informed that it is alive.

    On every (re)connection it makes a new session, sets its will, announces presence
    ``online``, subscribes to its config topic and beats from ``seq`` 0. It reconnects
    forever with capped exponential backoff and full jitter, also when the broker is down
    at start. ``stop()`` announces ``shutdown`` and disconnects cleanly.

    Refused logins: if the *first* attempt is refused for bad credentials, missing
    authorisation or a rejected client id, :meth:`start` / :meth:`run_forever` raise
    :class:`~device_client.errors.ConnectRefused` at once — a configuration error should
    fail the deployment, not hide in a retry loop. A refusal that happens later (the
    broker's users changed while the device was running) is logged at ERROR and retried
    with backoff, because a device in the field cannot fix its own credentials and should
    come back by itself once the broker is fixed.

    Args:
        device_id: the device id (1-64 of ``A-Z a-z 0-9 . _ -``); also the MQTT client id.
        broker: ``mqtt://[user[:password]@]host[:port]``, or ``mqtts://`` for TLS;
            several, comma-separated (or a sequence of parsed URLs), for the nodes of
            one broker cluster: the device connects to the first and moves to the next
            whenever its connection is lost or an attempt fails.
        username: broker username; overrides the URL's. Default: the URL's, else the
            device id (what the clawbeat broker ACL expects).
        password: broker password; overrides the URL's.
        tls_ca: CA file to verify the broker with (``mqtts://``; default: system CAs).
        tls_cert: client certificate file, for brokers that require one.
        tls_key: the client certificate's key file.
        interval: seconds between heartbeats until the monitor configures another.
        jitter: random extra delay per heartbeat, seconds (capped at half the interval).
        keepalive: MQTT keepalive, seconds (at most 300, protocol v1); the broker
            publishes the will about 1.5 x keepalive after the connection goes silent.
        metrics: called before each heartbeat on the device's loop thread; its mapping
            becomes the heartbeat's ``metrics``. Keep it quick. If it raises or returns
            something that is not JSON, the heartbeat goes out without metrics.
        fw: firmware version reported in heartbeats (at most 64 characters).
        logger: where to log (default ``clawbeat.device``).
        topic_root: topic root (default ``clawbeat/v1``).
        backoff_base: first reconnect backoff step, seconds.
        backoff_cap: largest reconnect backoff step, seconds.
        connect_timeout: seconds allowed for TCP/TLS connect and for the CONNACK.

    Raises:
        device_client.protocol.InvalidDeviceId: for a bad device id.
        device_client.errors.InvalidBrokerUrl: for a bad broker URL.
        ValueError: for out-of-range options.
        OSError: a TLS file cannot be read.
    """

    def __init__(
        self,
        *,
        device_id: str,
        broker: str | BrokerUrl | Sequence[BrokerUrl],
        username: str | None = None,
        password: str | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        interval: float = DEFAULT_INTERVAL,
        jitter: float = 0.0,
        keepalive: int = DEFAULT_KEEPALIVE,
        metrics: Callable[[], Mapping[str, Any]] | None = None,
        fw: str | None = None,
        logger: logging.Logger | None = None,
        topic_root: str = protocol.DEFAULT_TOPIC_ROOT,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if not 1 <= keepalive <= protocol.MAX_KEEPALIVE:
            raise ValueError(
                f"keepalive must be 1..{protocol.MAX_KEEPALIVE} seconds (protocol v1), "
                f"got {keepalive}"
            )
        self._log = logger or logging.getLogger(DEFAULT_LOGGER)
        self._endpoint = resolve_endpoint(
            broker,
            username=username,
            password=password,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
        rng = random.Random()
        self._core = DeviceCore(
            device_id=device_id,
            interval=interval,
            now=time.monotonic(),  # asyncio's loop.time() is this clock too
            rng=rng,
            jitter=jitter,
            fw=fw,
            topics=protocol.Topics(topic_root),
            backoff=Backoff(base=backoff_base, cap=backoff_cap, rng=rng),
            connect_timeout=connect_timeout,
        )
        self._keepalive = keepalive
        self._metrics = metrics

        self._lock = threading.Lock()
        self._state = _NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: Link | None = None
        self._thread: threading.Thread | None = None
        self._loop_thread: threading.Thread | None = None
        self._done = threading.Event()
        self._first: concurrent.futures.Future[BaseException | None] = concurrent.futures.Future()
        self._fatal: ConnectRefused | None = None
        self._cond = threading.Condition()
        self._connected = False
        self._session: str | None = None
        self._delivered = False

    # -- read-only state (any thread) --------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self._core.device_id

    @property
    def connected(self) -> bool:
        """True while a broker connection is up (CONNACK accepted)."""
        with self._cond:
            return self._connected

    @property
    def session(self) -> str | None:
        """The current connection's session id (None before the first connection)."""
        with self._cond:
            return self._session

    @property
    def interval(self) -> float:
        """The heartbeat interval in force: the constructor's, or the monitor's config."""
        return self._core.interval

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the device is connected.

        Args:
            timeout: seconds to wait at most; None waits forever.

        Returns:
            Whether the device is connected.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._connected, timeout)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start beating in the background (a daemon thread) and return.

        Waits for the outcome of the first connection attempt, at most about twice
        ``connect_timeout``; a broker that is down or unreachable is not an error (the
        device keeps retrying), a refused login is.

        Raises:
            ConnectRefused: the broker refused the first login (see the class docs).
            RuntimeError: the device was started before.
        """
        with self._lock:
            loop = self._begin()
            thread = threading.Thread(
                target=self._run_loop,
                args=(loop,),
                name=f"clawbeat-device-{self.device_id}",
                daemon=True,  # a forgotten stop() must not keep the process alive
            )
            self._thread = self._loop_thread = thread
            thread.start()
        # No outcome yet (a slow TLS handshake, a black-holed address) is not an error: the
        # device keeps trying in the background.
        with contextlib.suppress(concurrent.futures.TimeoutError):
            self._first.result(timeout=2 * self._core.connect_timeout + 1)
        if self._fatal is not None:
            self._done.wait()
            thread.join()
            raise self._fatal

    def run_forever(self, *, stop_timeout: float = 5.0) -> None:
        """Run on the calling thread until :meth:`stop`, SIGTERM or SIGINT.

        Signals are handled only when called from the main thread; the device then
        announces ``shutdown``, disconnects cleanly and this method returns.

        Args:
            stop_timeout: how long a signal-initiated stop waits for the broker to
                acknowledge the shutdown presence.

        Raises:
            ConnectRefused: the broker refused the first login (see the class docs).
            RuntimeError: the device was started before.
        """
        with self._lock:
            loop = self._begin()
            self._loop_thread = threading.current_thread()
        link = self._link
        assert link is not None
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stop_from_signal, signum, stop_timeout)
        self._run_loop(loop)
        if self._fatal is not None:
            raise self._fatal

    def stop(self, timeout: float = 5.0) -> bool:
        """Announce ``shutdown``, wait for the broker to acknowledge it, disconnect.

        If the acknowledgement does not arrive within ``timeout`` the connection is closed
        without DISCONNECT so the broker's will still reports the device offline. Safe to
        call more than once and from any thread; called from the device's own loop thread
        (inside the metrics callback) it only initiates the stop.

        Args:
            timeout: seconds to wait for the broker's acknowledgement.

        Returns:
            Whether the broker acknowledged the shutdown presence.
        """
        with self._lock:
            state, self._state = self._state, _STOPPED
            loop, link = self._loop, self._link
        if state == _NEW:
            return False
        if state == _RUNNING and loop is not None and link is not None:
            # RuntimeError: the loop already ended (a refused first login).
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(link.stop, timeout)
        if threading.current_thread() is self._loop_thread:
            return False
        self._done.wait(timeout + 2 * self._core.connect_timeout + 1)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        return self._delivered

    def __enter__(self) -> Device:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _begin(self) -> asyncio.AbstractEventLoop:
        """Build the loop and the link (caller holds ``_lock``)."""
        if self._state != _NEW:
            raise RuntimeError(
                f"device {self.device_id!r} was already started or stopped; make a new Device"
            )
        self._state = _RUNNING
        if self._endpoint.username not in (None, self.device_id):
            self._log.warning(
                "device %s logs in as %r: the clawbeat broker ACL only lets a device write "
                "topics named after its own username",
                self.device_id,
                self._endpoint.username,
            )
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._link = Link(
            self._core,
            loop=loop,
            endpoint=self._endpoint,
            keepalive=self._keepalive,
            logger=self._log,
            metrics=self._metrics,
            listener=_DeviceListener(self),
        )
        return loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        link = self._link
        assert link is not None
        try:
            asyncio.set_event_loop(loop)
            loop.call_soon(link.start)
            loop.run_forever()
        finally:
            with self._cond:
                self._connected = False
                self._cond.notify_all()
            loop.close()
            asyncio.set_event_loop(None)
            if not self._first.done():
                self._first.set_result(None)
            self._done.set()

    def _stop_from_signal(self, signum: int, timeout: float) -> None:
        self._log.info(
            "device %s: %s received, stopping", self.device_id, signal.Signals(signum).name
        )
        with self._lock:
            self._state = _STOPPED
        if self._link is not None:
            self._link.stop(timeout)


class _DeviceListener(LinkListener):
    """Mirrors the link's state into the Device (runs on the loop thread)."""

    def __init__(self, device: Device) -> None:
        self._device = device

    @override
    def on_first_outcome(self, link: Link, error: BaseException | None) -> None:
        device = self._device
        if isinstance(error, ConnectRefused) and error.code in PERMANENT_REFUSALS:
            device._fatal = error
            link.abandon()
        if not device._first.done():
            device._first.set_result(error)

    @override
    def on_connected(self, link: Link) -> None:
        with self._device._cond:
            self._device._connected = True
            self._device._session = link.core.session
            self._device._cond.notify_all()

    @override
    def on_disconnected(self, link: Link) -> None:
        with self._device._cond:
            self._device._connected = False
            self._device._cond.notify_all()

    @override
    def on_stopped(self, link: Link, delivered: bool) -> None:
        device = self._device
        device._delivered = delivered
        with device._cond:
            device._connected = False
            device._cond.notify_all()
        link.loop.stop()
