"""Where and how to connect: host, port, credentials and TLS, resolved once."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from device_client.errors import InvalidBrokerUrl
from device_client.urls import BrokerUrl, parse_broker_urls


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A broker to connect to. ``username`` None means "the device id".

    ``alternates``: further nodes of the same broker cluster, as ``(host, port)``; they
    share the login and TLS setting. A client starts at one address and moves on to
    the next whenever a connection is lost or an attempt fails.
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = None
    alternates: tuple[tuple[str, int], ...] = ()

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port), *self.alternates)

    def describe(self, username: str | None = None, address: int | None = None) -> str:
        """``mqtt[s]://user@host:port`` for log lines (never the password).

        ``address``: which of :attr:`addresses`; None names the first and how many more.
        """
        user = username or self.username
        scheme = "mqtts" if self.ssl_context is not None else "mqtt"
        host, port = self.addresses[(address or 0) % len(self.addresses)]
        more = f" (+{len(self.alternates)} more)" if self.alternates and address is None else ""
        return f"{scheme}://{user + '@' if user else ''}{host}:{port}{more}"


def make_ssl_context(
    *,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> ssl.SSLContext:
    """A client TLS context that verifies the broker's certificate and host name.

    Args:
        ca_file: CA bundle to trust; the system's trust store if omitted.
        cert_file: client certificate (PEM), for brokers that require one.
        key_file: its private key; may be omitted when it is inside ``cert_file``.
    """
    if key_file is not None and cert_file is None:
        raise ValueError("a TLS client key needs its certificate (tls_cert)")
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if cert_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return context


def resolve_endpoint(
    broker: str | BrokerUrl | Sequence[BrokerUrl],
    *,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
) -> Endpoint:
    """Combine a broker URL with explicit options; explicit options win over the URL.

    Args:
        broker: ``mqtt://[user[:password]@]host[:port]``, or ``mqtts://`` for TLS;
            several, comma-separated (or parsed), for the nodes of one cluster.
        username: overrides the URL's user.
        password: overrides the URL's password.
        tls_ca: CA file for verifying the broker (``mqtts://`` only).
        tls_cert: client certificate file (``mqtts://`` only).
        tls_key: client key file (``mqtts://`` only).

    Raises:
        InvalidBrokerUrl: for a bad URL, or TLS files given with a plain ``mqtt://`` URL
            (silently connecting without TLS when TLS was configured would be worse).
        OSError: a TLS file cannot be read.
        ssl.SSLError: a TLS file is not a valid certificate or key.
    """
    if isinstance(broker, str):
        urls = parse_broker_urls(broker)
    elif isinstance(broker, BrokerUrl):
        urls = (broker,)
    else:
        urls = tuple(broker)
        if not urls:
            raise InvalidBrokerUrl("", "no broker URL")
    url = urls[0]
    if not url.tls and (tls_ca or tls_cert or tls_key):
        raise InvalidBrokerUrl(url.redacted(), "TLS files were given: use an mqtts:// URL")
    context = (
        make_ssl_context(ca_file=tls_ca, cert_file=tls_cert, key_file=tls_key) if url.tls else None
    )
    return Endpoint(
        host=url.host,
        port=url.port,
        username=username if username is not None else url.username,
        password=password if password is not None else url.password,
        ssl_context=context,
        alternates=tuple((other.host, other.port) for other in urls[1:]),
    )
