"""Request bodies: the token is checked before a body is read, and bodies are bounded.

FastAPI reads and parses a request's body before it resolves the route's dependencies,
the token check among them. Left alone, anyone who can reach the port could make the
monitor buffer and parse any amount of JSON (a 114 MB body took it from 93 MiB to
~890 MiB and stalled the event loop for seconds) before hearing 401, or hold a request
open forever by announcing a body it never sends.

This ASGI middleware runs before the application for every request that carries a body:

1. ``/api/`` requests are authenticated first, from their headers alone (401/429/503
   without reading a byte of the body). The principal goes into the request's state,
   where :mod:`monitor.web.auth` finds it, so the token is checked once.
2. A body announced larger than ``max_body`` is refused at once (413); a chunked one is
   refused as soon as it grows past it.
3. The whole body must arrive within ``body_timeout`` seconds (408): a client
   trickling bytes cannot hold a request open.

The body is then handed to the application from memory. Refusals close the connection
(``Connection: close``): the unread rest of the body must not be taken as a next request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from fastapi import HTTPException, status
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.web.auth import Principal

MAX_BODY: Final = 64 * 1024
BODY_TIMEOUT: Final = 10.0

# The one endpoint that also takes its token from the query (EventSource); see auth.py.
_EVENTS_PATH: Final = "/api/events"

Authenticate = Callable[[str | None, str | None], Awaitable[Principal]]
"""(token, client host) -> principal, raising HTTPException (monitor.web.auth)."""


class _Refused(Exception):
    def __init__(self, code: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


class BodyGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Authenticate,
        max_body: int = MAX_BODY,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length_text = headers.get("content-length")
        chunked = "transfer-encoding" in headers
        if not chunked and (length_text is None or length_text.strip() == "0"):
            await self.app(scope, receive, send)  # no body: nothing to guard
            return
        try:
            if scope["path"].startswith("/api/"):
                principal = await self._authenticate(scope, headers)
                scope.setdefault("state", {})["principal"] = principal
            # h11 has already refused a Content-Length that is not a number.
            if length_text is not None and int(length_text) > self.max_body:
                raise _too_large(self.max_body)
            body = await self._read(receive)
        except _Refused as refused:
            await _answer(send, refused)
            return
        if body is None:
            return  # the client went away
        await self.app(scope, _replay(body, receive), send)

    async def _authenticate(self, scope: Scope, headers: Headers) -> Principal:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else None
        if not token and scope["path"] == _EVENTS_PATH:
            token = QueryParams(scope.get("query_string", b"")).get("token")
        client = scope.get("client")
        try:
            return await self.authenticate(token, client[0] if client else None)
        except HTTPException as exc:
            raise _Refused(exc.status_code, str(exc.detail), exc.headers) from exc

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:
                        raise _too_large(self.max_body)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Refused(
                status.HTTP_408_REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.body_timeout:g} s",
            ) from None


def _too_large(limit: int) -> _Refused:
    return _Refused(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"request body too large: at most {limit} bytes (CLAWBEAT_HTTP_MAX_BODY)",
    )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the disconnect, as usual

    return replay


async def _answer(send: Send, refused: _Refused) -> None:
    body = json.dumps({"detail": refused.detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((k.lower().encode(), v.encode()) for k, v in refused.headers.items()),
    ]
    await send({"type": "http.response.start", "status": refused.code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
