"""Why a connection to the broker failed, in words an operator can act on.

aiomqtt reports a refused login, a closed port, an unknown host and a timeout all as
``MqttError`` with paho's or the OS's wording (and turns the ``OSError`` into a string,
keeping it only as ``__context__``). The monitor retries whatever happened, but what it
logs, ``/health/ready`` and ``clawbeat_broker_connect_failures_total{reason}`` say which
of these it is, so nobody has to guess from "connection lost".
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode


class FailureKind(StrEnum):
    """The ``reason`` label of ``clawbeat_broker_connect_failures_total``."""

    AUTH = "auth"  # the broker refused the login (username, password, client id)
    REFUSED = "refused"  # nothing listens on that port
    UNREACHABLE = "unreachable"  # no route to the host, or the network is down
    DNS = "dns"  # the host name does not resolve
    TIMEOUT = "timeout"  # no answer in time (a firewall dropping packets, a hung broker)
    TLS = "tls"  # the TLS handshake failed (certificate, trust, protocol)
    LOST = "lost"  # the broker closed the connection before accepting it
    SUBSCRIBE = "subscribe"  # the broker refused one of the monitor's subscriptions
    OTHER = "other"


# MQTT 3.1.1 CONNACK return codes and MQTT 5 reason codes that mean "not you".
_AUTH_CODES = frozenset({2, 4, 5, 0x85, 0x86, 0x87, 0x8A, 0x8C})


@dataclass(frozen=True)
class ConnectFailure:
    kind: FailureKind
    detail: str

    def __str__(self) -> str:
        return self.detail


class SubscriptionRefused(aiomqtt.MqttError):
    """The broker refused one of the monitor's subscriptions: the connection is no use.

    A monitor connected without its subscriptions would hear nothing and judge the whole
    fleet dead, so the connection counts as failed and is retried with backoff, the
    monitor blind meanwhile. A broker ACL that lacks a topic keeps it so, saying why;
    a clustered broker refuses briefly while it recovers from a lost node (nats-server
    cannot create the subscription's JetStream consumer until its streams have a new
    leader), and the retry heals that.
    """

    def __init__(self, topic: str, reason: object) -> None:
        self.topic = topic
        super().__init__(
            f"the broker refused the subscription {topic} ({reason}): check its ACL for "
            "the monitor's user"
        )


def describe(exc: BaseException) -> ConnectFailure:
    """Classify a failed connection attempt (an ``aiomqtt.MqttError`` or what caused it)."""
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if isinstance(exc, MqttConnectError):
            if code in _AUTH_CODES:
                return ConnectFailure(
                    FailureKind.AUTH,
                    f"the broker refused the login ({_first_line(exc)}): "
                    "check the username and password (CLAWBEAT_MQTT_URL, "
                    "CLAWBEAT_MQTT_PASSWORD) and the broker's password file",
                )
            return ConnectFailure(FailureKind.OTHER, f"the broker refused: {_first_line(exc)}")
    if isinstance(exc, SubscriptionRefused):
        return ConnectFailure(FailureKind.SUBSCRIBE, _first_line(exc))
    cause = _os_error(exc)
    if isinstance(cause, ssl.SSLError):
        return ConnectFailure(FailureKind.TLS, f"TLS handshake failed: {_first_line(cause)}")
    if isinstance(cause, ConnectionRefusedError):
        return ConnectFailure(FailureKind.REFUSED, "connection refused: nothing listens there")
    if isinstance(cause, socket.gaierror):
        return ConnectFailure(FailureKind.DNS, f"host name does not resolve: {cause.strerror}")
    if isinstance(cause, TimeoutError):
        return ConnectFailure(FailureKind.TIMEOUT, "no answer from the broker in time")
    if isinstance(cause, OSError):
        return ConnectFailure(FailureKind.UNREACHABLE, _first_line(cause))
    text = _first_line(exc)
    if "timed out" in text.lower():
        # aiomqtt's own timeout waiting for CONNACK: connected, but the broker is silent.
        return ConnectFailure(FailureKind.TIMEOUT, "no answer from the broker in time")
    return ConnectFailure(FailureKind.LOST, text)


def _os_error(exc: BaseException) -> BaseException | None:
    """The OSError behind ``exc`` (aiomqtt raises ``from None``, leaving it as context)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:300]
