"""Broker URLs: ``mqtt://user:pass@host:1883`` and ``mqtts://`` for TLS.

Several, comma-separated, name the nodes of one broker cluster (``parse_broker_urls``):
a client connects to one and moves to the next when it is lost.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote, urlsplit

from device_client.errors import InvalidBrokerUrl

DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
# host[:port] up to the path, query or fragment; an IPv6 host is bracketed.
_NETLOC_RE: Final = re.compile(r"(?P<host>\[[^\]]*\]?|[^:/?#]*)(?::(?P<port>[^/?#]*))?")


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """A parsed broker URL. ``password`` is kept out of ``repr`` so it never reaches logs."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    def without_credentials(self) -> BrokerUrl:
        return dataclasses.replace(self, username=None, password=None)

    def redacted(self) -> str:
        """The URL for log lines: user shown, password never."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def redact(url: str) -> str:
    """Hide the password of a URL string that may not even parse.

    Everything between the user name and the *last* ``@`` is hidden, as ``urlsplit``
    takes the last ``@`` as the end of the credentials, so a password holding an
    unescaped ``@``, ``/``, ``?`` or ``#`` (or a URL without ``//``) does not show
    through. Without any ``@``, a port that is not a number is hidden too:
    ``mqtt://monitor:secret`` (host forgotten) reads as host ``monitor``, port ``secret``.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    prefix = scheme + separator
    credentials, at, address = rest.rpartition("@")
    if at:
        user, colon, _ = credentials.partition(":")
        return f"{prefix}{user}{':***' if colon else ''}@{address}"
    match = _NETLOC_RE.match(rest)
    assert match is not None  # every part of the pattern may be empty
    host, port, tail = match.group("host"), match.group("port"), rest[match.end() :]
    if port is not None and not port.isdigit():
        port = "***"
    return f"{prefix}{host}{'' if port is None else ':' + port}{tail}"


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS).

    User and password are percent-decoded, so a password containing ``@`` or ``:`` is
    written ``%40`` / ``%3A``. Ports default to 1883 (mqtt) and 8883 (mqtts).

    Args:
        url: the broker URL.

    Returns:
        The parsed URL.

    Raises:
        InvalidBrokerUrl: for another scheme, a missing host, a bad port, or a path,
            query or fragment (none of which MQTT over TCP has).
    """
    shown = redact(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": names no part of the URL
        raise InvalidBrokerUrl(shown, str(exc)) from None
    try:
        port = parts.port
    except ValueError:
        # Not str(exc): it quotes the "port", which may be a misplaced password.
        raise InvalidBrokerUrl(shown, _port_problem(parts.netloc)) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise InvalidBrokerUrl(shown, "the scheme must be mqtt:// or mqtts:// (TLS)")
    if not parts.hostname:
        raise InvalidBrokerUrl(shown, "no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidBrokerUrl(shown, "a broker URL has no path, query or fragment")
    if port == 0:
        raise InvalidBrokerUrl(shown, "port 0")
    return BrokerUrl(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def parse_broker_urls(text: str) -> tuple[BrokerUrl, ...]:
    """Parse one broker URL or several, comma-separated (the nodes of one cluster).

    The nodes share one login and one TLS setting: every URL has the same scheme, and
    user and password are given once (in any URL) or the same in each; URLs without
    them get them. A ``,`` inside a password is written ``%2C``.

    Raises:
        InvalidBrokerUrl: a URL is invalid (naming it, password hidden), the list is
            empty or has an empty entry, or the URLs disagree on scheme or login.
    """
    parts = [part.strip() for part in text.split(",")]
    if len(parts) > 1 and not all(parts):
        raise InvalidBrokerUrl(redact(text), "an empty entry in the list of broker URLs")
    try:
        urls = [parse_broker_url(part) for part in parts]
    except InvalidBrokerUrl as exc:
        if len(parts) == 1:
            raise
        # Shown whole, hidden as one URL: a ',' left unescaped in a password splits it,
        # and a piece of it must not be shown as if it were a user name.
        raise InvalidBrokerUrl(redact(text), exc.problem) from None
    first = urls[0]
    if any(url.tls != first.tls for url in urls):
        raise InvalidBrokerUrl(redact(text), "the URLs mix mqtt:// and mqtts://")
    logins = {(url.username, url.password) for url in urls if url.username is not None}
    if len(logins) > 1 or any(u.username is None and u.password is not None for u in urls):
        raise InvalidBrokerUrl(
            redact(text), "give the login once, or the same in every URL of the list"
        )
    username, password = next(iter(logins), (None, None))
    return tuple(dataclasses.replace(url, username=username, password=password) for url in urls)


def _port_problem(netloc: str) -> str:
    port = netloc.rpartition("@")[2].rpartition(":")[2]
    if port.isdigit():
        return "port out of range (1-65535)"
    return "the port is not a number (percent-encode '@', '/', '?' and '#' in a password)"
