"""Local servers that really receive notifications: SMTP (aiosmtpd) and a JSON webhook.

Tests point apprise channels at them (``mailto://127.0.0.1:PORT?...``,
``json://127.0.0.1:PORT/path``) so an alert travels the same way it would to a real
mail server or chat webhook; only the far end is local.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from aiosmtpd.controller import Controller

_T = TypeVar("_T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(
    cond: threading.Condition,
    items: list[_T],
    predicate: Callable[[_T], bool],
    count: int,
    timeout: float,
    what: str,
) -> list[_T]:
    deadline = time.monotonic() + timeout
    with cond:
        while True:
            found = [i for i in items if predicate(i)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"wanted {count} {what}, got {len(found)}; all received: {items!r}"
                )
            cond.wait(remaining)


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    at: float


class SmtpSink:
    """An SMTP server on a free port that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Mail] = []
        self._cond = threading.Condition()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def url(self, to: str = "ops@example.com") -> str:
        """An apprise URL for this server: plain SMTP, no TLS, no login."""
        return f"mailto://127.0.0.1:{self.port}?from=clawbeat@example.com&to={to}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        with self._cond:
            self.messages.append(
                Mail(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    str(parsed["subject"]),
                    str(body),
                    time.monotonic(),
                )
            )
            self._cond.notify_all()
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def wait(
        self, predicate: Callable[[Mail], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Mail]:
        return _wait(self._cond, self.messages, predicate, count, timeout, "mails")

    def subjects(self) -> list[str]:
        with self._cond:
            return [m.subject for m in self.messages]


@dataclass(frozen=True)
class Hook:
    path: str
    title: str
    message: str
    type: str
    at: float


class WebhookSink:
    """An HTTP server receiving apprise ``json://`` posts; can be stopped and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.posts: list[Hook] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size) or b"{}")
                with sink._cond:
                    sink.posts.append(
                        Hook(
                            self.path,
                            str(body.get("title", "")),
                            str(body.get("message", "")),
                            str(body.get("type", "")),
                            time.monotonic(),
                        )
                    )
                    sink._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(
        self, predicate: Callable[[Hook], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Hook]:
        return _wait(self._cond, self.posts, predicate, count, timeout, "webhook posts")

    def matching(self, predicate: Callable[[Hook], bool]) -> list[Hook]:
        with self._cond:
            return [p for p in self.posts if predicate(p)]

    def titles(self, path: str | None = None) -> list[str]:
        with self._cond:
            return [p.title for p in self.posts if path is None or p.path == path]
