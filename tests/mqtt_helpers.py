"""Small synchronous paho helpers for tests: connect, collect messages, wait for them."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on receipt


class MqttProbe:
    """A paho client that records what it receives; for observing the broker in tests."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        ca_file: Path | None = None,
        keepalive: int = 30,
    ) -> None:
        parts = urlsplit(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or unquote(parts.username or "")
        )
        if parts.username:
            self.client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            self.client.tls_set_context(ctx)
        self.messages: list[Received] = []
        self.connect_result: Any = None
        self._connected = threading.Event()
        self._cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.keepalive = keepalive

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connect_result = reason
        self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), msg.retain, time.monotonic())
            )
            self._cond.notify_all()

    def connect(self, timeout: float = 5.0) -> Any:
        """Connect and return the CONNACK reason code (success or refusal)."""
        self.client.connect(self.host, self.port, self.keepalive)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError("no CONNACK")
        return self.connect_result

    def subscribe(self, topic: str, qos: int = 1) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos)
        if not done.wait(5):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(
        self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 10.0, *, count: int = 1
    ) -> list[Received]:
        """Wait until ``count`` received messages match ``predicate``; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:120]) for m in self.messages[-10:]]
                    raise TimeoutError(f"wanted {count} matching message(s); last seen: {seen}")
                self._cond.wait(remaining)

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if predicate(m)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
