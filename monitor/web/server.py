"""Runs the web app with uvicorn inside the monitor's event loop.

The socket is bound by :meth:`HttpServer.bind` before the monitor's tasks start, so a
port already in use or an unreadable TLS key stops ``clawbeat monitor`` at once with a
message naming the setting, instead of a monitor running without its API.

uvicorn normally installs its own SIGINT/SIGTERM handlers; here the monitor owns the
signals (it must flush and publish its offline presence), so they are left alone and
the monitor stops this server itself when it shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Final

import uvicorn

from monitor.errors import ConfigError
from monitor.service import MonitorService
from monitor.web.app import create_app
from monitor.web.bind import parse_bind
from monitor.web.routes_read import summary_of

log = logging.getLogger("clawbeat.web")

_GRACEFUL_SECONDS: Final = 2


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The monitor handles SIGTERM/SIGINT and stops this server; see the module doc.
        yield


class HttpServer:
    """The API, dashboard and /metrics: a face the service runs (see ``Face``)."""

    name = "http"

    def __init__(self, service: MonitorService) -> None:
        settings = service.settings
        self.service = service
        self.host, port = parse_bind(settings.http_bind)
        self.tls = settings.http_tls_cert is not None
        self.app = create_app(service)
        self.config = uvicorn.Config(
            self.app,
            host=self.host,
            port=port,
            ssl_certfile=str(settings.http_tls_cert) if settings.http_tls_cert else None,
            ssl_keyfile=str(settings.http_tls_key) if settings.http_tls_key else None,
            # Logging stays the monitor's (text or JSON). No access log: the event stream
            # URL carries a token, which must not end up in log files.
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=_GRACEFUL_SECONDS,
        )
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None

    @property
    def bound(self) -> bool:
        """The listening socket is open (``bind()`` succeeded)."""
        return self._socket is not None

    @property
    def port(self) -> int:
        assert self._socket is not None, "bind() first"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "::"):  # noqa: S104 - a URL to show, not a bind
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def bind(self) -> None:
        """Load TLS material and bind the listening socket; ConfigError if either fails."""
        try:
            self.config.load()
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"HTTPS: cannot load CLAWBEAT_HTTP_TLS_CERT/_KEY "
                f"({self.config.ssl_certfile}, {self.config.ssl_keyfile}): {exc}"
            ) from exc
        try:
            family = (
                socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
            )
        except ValueError:  # a host name
            family = socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.config.port))
            sock.listen(self.config.backlog)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot serve HTTP on {self.host}:{self.config.port}: {exc.strerror or exc} "
                "(change CLAWBEAT_HTTP_BIND / --http-bind, or set it empty to disable)"
            ) from exc
        self._socket = sock

    async def serve(self) -> None:
        """Serve until cancelled, then close streams and finish requests (briefly)."""
        assert self._socket is not None, "bind() first"
        server = self._server = _EmbeddedServer(self.config)
        serving = asyncio.create_task(server.serve(sockets=[self._socket]), name="uvicorn")
        pulse = asyncio.create_task(self._summaries(), name="summaries")
        log.info("HTTP API and dashboard on %s/", self.url)
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            server.should_exit = True
            self.service.events.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(_GRACEFUL_SECONDS + 3):
                    await serving
            raise
        finally:
            pulse.cancel()
            if not serving.done():
                serving.cancel()
            self._socket.close()

    async def _summaries(self) -> None:
        """Fleet counts to every dashboard every summary interval."""
        events = self.service.events
        while True:
            await asyncio.sleep(self.service.settings.summary_interval)
            if events.subscribers:
                events.publish("summary", summary_of(self.service).model_dump(mode="json"))
