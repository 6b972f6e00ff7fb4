"""One device connection driven by hand, for fleets in other conventions.

No background network loop: the connection only does something while a call pumps it,
so after a takeover or :meth:`drop` it stays dead instead of reconnecting by itself
(which would take the new connection over in turn).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.harness.mosquitto import TestBroker


class DeviceConnection:
    def __init__(
        self,
        broker: TestBroker,
        user: str,
        *,
        will: tuple[str, bytes | str, bool] | None = None,
        keepalive: int = 120,
    ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user)
        self.client.username_pw_set(user, broker.device_passwords[user])
        if will is not None:
            topic, payload, retain = will
            self.client.will_set(topic, payload, qos=1, retain=retain)
        refused: list[object] = []
        self.client.on_connect = lambda _c, _u, _f, reason, _p: (
            refused.append(reason) if reason.is_failure else None
        )
        self.received: list[mqtt.MQTTMessage] = []
        self.client.on_message = lambda _c, _u, msg: self.received.append(msg)
        self.client.connect(broker.host, broker.port, keepalive)
        self._pump_until(self.client.is_connected, f"{user} connected")
        assert not refused, refused

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._pump_until(info.is_published, f"PUBACK for {topic}")

    def subscribe(self, topic: str) -> None:
        acked: list[object] = []
        self.client.on_subscribe = lambda *_a: acked.append(True)
        self.client.subscribe(topic, qos=1)
        self._pump_until(lambda: bool(acked), f"SUBACK for {topic}")

    def wait_message(self, topic: str, timeout: float = 10.0) -> mqtt.MQTTMessage:
        """Pump until a message on ``topic`` has arrived; return the first."""

        def found() -> bool:
            return any(m.topic == topic for m in self.received)

        self._pump_until(found, f"a message on {topic}", timeout)
        return next(m for m in self.received if m.topic == topic)

    def drop(self) -> None:
        """End the connection without DISCONNECT, as a crash would: the broker sends the will."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """A clean disconnect (no will)."""
        if self.client.is_connected():
            self.client.disconnect()
            self.client.loop(timeout=0.1)

    def _pump_until(self, done: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {timeout}s")
            self.client.loop(timeout=0.05)
