"""clawbeat as a Sparkplug B 3.0 primary host application: the retained STATE topic.

Edge nodes configured with a primary host wait for ``spBv1.0/STATE/{host_id}`` to say
``{"online": true, ...}`` before they publish births, and disconnect when it says
``false``. The host's death must reach them through its MQTT will, and MQTT gives a
connection one will, which the monitor's link already spends on its own presence: so the
STATE topic has a connection of its own, opened here.

Rules (specification 3.0, "Sparkplug Host Application"):

* on every connection the host sets its will to ``{"online": false, "timestamp": T}``
  (retained, QoS 1), then publishes ``{"online": true, "timestamp": T}`` with the same
  T, a new one per connection, so an edge node can tell a late will of an older
  connection (smaller timestamp) from the current one;
* it subscribes to its own STATE topic and publishes its birth again if anything else
  overwrites it while it is connected;
* a clean stop publishes ``{"online": false, "timestamp": T}`` before disconnecting.

The connection is independent of the monitor's link: while the link is blind the STATE
topic may still say online (edge nodes keep publishing, which is what lets the monitor
catch up when it sees again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt

from device_client.backoff import Backoff
from device_client.endpoint import make_ssl_context
from device_client.errors import InvalidBrokerUrl
from device_client.urls import BrokerUrl, parse_broker_url
from monitor.settings import MonitorSettings
from monitor.sources.config import SourceConfigError
from monitor.sources.sparkplug import SparkplugAdapter, state_topic


def state_payload(*, online: bool, timestamp_ms: int) -> bytes:
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


@dataclass(frozen=True)
class HostOptions:
    host_id: str
    address: BrokerUrl
    client_id: str
    keepalive: int = 10
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class PrimaryHost:
    def __init__(self, options: HostOptions, *, logger: logging.Logger | None = None) -> None:
        self._opts = options
        self._log = logger or logging.getLogger("clawbeat.sparkplug.host")
        self._topic = state_topic(options.host_id)
        self._stopping = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._birth_ms = 0
        self._done = asyncio.Event()
        self.connected = False

    @property
    def topic(self) -> str:
        return self._topic

    def _tls(self) -> ssl.SSLContext | None:
        if not self._opts.address.tls:
            return None
        return make_ssl_context(
            ca_file=self._opts.ca_file, cert_file=self._opts.cert_file, key_file=self._opts.key_file
        )

    async def run(self) -> None:
        """Hold the STATE connection, reconnecting with backoff, until :meth:`close`."""
        try:
            await self._run()
        finally:
            self._done.set()

    async def _run(self) -> None:
        backoff = Backoff(base=0.5, cap=15.0, rng=random.Random())
        addr = self._opts.address
        while not self._stopping.is_set():
            # Milliseconds, strictly growing across reconnects even if the clock is coarse.
            self._birth_ms = max(self._birth_ms + 1, round(time.time() * 1000))
            will = aiomqtt.Will(
                self._topic,
                state_payload(online=False, timestamp_ms=self._birth_ms),
                qos=1,
                retain=True,
            )
            client = aiomqtt.Client(
                addr.host,
                addr.port,
                username=addr.username,
                password=addr.password,
                identifier=self._opts.client_id,
                keepalive=self._opts.keepalive,
                clean_session=True,
                will=will,
                tls_context=self._tls(),
                timeout=10,
            )
            try:
                async with client:
                    self._client = client
                    await client.subscribe(self._topic, qos=1)
                    await self._birth(client)
                    self.connected = True
                    backoff.reset()
                    self._log.info("Sparkplug primary host %r online", self._opts.host_id)
                    await self._watch(client)
            except aiomqtt.MqttError as exc:
                if self._stopping.is_set():
                    break
                self._log.warning("Sparkplug host connection lost (%s); reconnecting", exc)
                await _sleep_unless(self._stopping, backoff.next_delay())
            finally:
                self.connected = False
                self._client = None

    async def _birth(self, client: aiomqtt.Client) -> None:
        payload = state_payload(online=True, timestamp_ms=self._birth_ms)
        await client.publish(self._topic, payload, qos=1, retain=True)

    async def _watch(self, client: aiomqtt.Client) -> None:
        keeper = asyncio.create_task(self._keep_birth(client))
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({keeper, stop}, return_when=asyncio.FIRST_COMPLETED)
            if keeper in done:
                keeper.result()  # the connection ended: raises MqttError
                return
            # The keeper goes first: our own offline comes back on the subscription and
            # it would take it for an overwrite and republish the birth after it.
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            # A clean stop: say offline (the birth's timestamp) while still connected.
            await client.publish(
                self._topic,
                state_payload(online=False, timestamp_ms=self._birth_ms),
                qos=1,
                retain=True,
                timeout=5,
            )
        finally:
            keeper.cancel()
            stop.cancel()

    async def _keep_birth(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            raw = message.payload
            try:
                body = json.loads(raw if isinstance(raw, bytes | str) else b"")
            except ValueError:
                body = None
            if not (
                isinstance(body, dict)
                and body.get("online") is True
                and body.get("timestamp") == self._birth_ms
            ):
                # Something else (a stale will, another host) overwrote our STATE.
                self._log.warning("STATE topic %s overwritten; republishing", self._topic)
                await self._birth(client)
        raise aiomqtt.MqttError("message stream ended")

    async def close(self, within: float = 5.0) -> None:
        """Publish offline (when connected) and disconnect; wait at most ``within``."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), within)


async def _sleep_unless(event: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), delay)


def host_options(
    adapters: Sequence[object], settings: MonitorSettings, *, client_id: str
) -> HostOptions | None:
    """The primary host's connection, if a Sparkplug source asks for one."""
    hosts = [
        a for a in adapters if isinstance(a, SparkplugAdapter) and a.primary_host_id is not None
    ]
    if not hosts:
        return None
    source = hosts[0]
    assert source.primary_host_id is not None
    if settings.sparkplug_host_url is None:
        # The broker binds client ids to usernames (use_username_as_clientid): a second
        # connection as the monitor's user would take the monitor's own link over.
        raise SourceConfigError(
            "primary_host_id needs CLAWBEAT_SPARKPLUG_HOST_URL, a broker user of its own",
            source=source.name,
        )
    try:
        address = parse_broker_url(settings.sparkplug_host_url.get_secret_value())
    except InvalidBrokerUrl as exc:
        raise SourceConfigError(f"CLAWBEAT_SPARKPLUG_HOST_URL: {exc}") from exc
    return HostOptions(
        host_id=source.primary_host_id,
        address=address,
        client_id=address.username or f"{client_id}-sparkplug-host",
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
        cert_file=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
        key_file=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
    )
