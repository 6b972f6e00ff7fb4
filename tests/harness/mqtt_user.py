"""MQTT clients for permission tests: log in as a user, record messages and SUBACK codes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class MqttUser:
    """A paho client logged in as ``user`` on one node, recording messages and SUBACKs."""

    def __init__(
        self,
        port: int,
        user: str,
        *,
        will_topic: str | None = None,
        passwords: Mapping[str, str],
    ) -> None:
        self.user = user
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connacks: list[int] = []
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{port}")
        self.client.username_pw_set(user, passwords[user])
        if will_topic:
            self.client.will_set(will_topic, b'{"state":"offline"}', qos=1, retain=True)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        self.wait(lambda: self.connacks, "CONNACK")

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._cond:
            self.connacks.append(reason.value)
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait(self, condition: Any, what: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := condition()):
                if not self._cond.wait(deadline - time.monotonic()) and not condition():
                    raise AssertionError(f"{self.user}: no {what}; got {self.messages}")
            return result

    def subscribe(self, topic: str) -> int:
        """Subscribe at QoS 1; the SUBACK code (1 granted, 128 refused)."""
        codes: list[int] = []
        done = threading.Event()

        def on_subscribe(_c: Any, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
            codes.extend(r.value for r in reasons)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos=1)
        assert done.wait(10), f"no SUBACK for {topic}"
        return codes[0]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def topics(self) -> list[str]:
        with self._cond:
            return [topic for topic, _, _ in self.messages]

    def die(self) -> None:
        """Close the socket without DISCONNECT: the server publishes the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
