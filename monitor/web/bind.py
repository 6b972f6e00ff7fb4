"""The HTTP bind setting (``CLAWBEAT_HTTP_BIND``), parsed without the web stack, so
the demo can check its ports before anything starts."""

from __future__ import annotations

from monitor.errors import ConfigError


def parse_bind(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); raises ConfigError."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65_535:
        raise ConfigError(
            f"http_bind {value!r}: expected HOST:PORT such as 127.0.0.1:8080 "
            "(CLAWBEAT_HTTP_BIND or --http-bind; empty disables the HTTP server)"
        )
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ':8080' asks for every interface
    return host, int(port_text)
