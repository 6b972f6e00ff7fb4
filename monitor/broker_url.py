"""Broker URLs (``mqtt://user:pass@host:port``, ``mqtts://`` for TLS) for the monitor."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from monitor.errors import ConfigError


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid broker URL {url!r}: {exc}") from exc
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"invalid broker URL {url!r}: the scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"invalid broker URL {url!r}: no host")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
