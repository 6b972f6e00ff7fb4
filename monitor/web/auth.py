"""Bearer-token authentication with two scopes, ``read`` and ``admin``.

Tokens are verified against their SHA-256 in the ``api_tokens`` table
(:mod:`monitor.store.tokens`). A verified token is cached for ``CACHE_SECONDS`` so a
dashboard polling every few seconds costs no query per request; a revoked token
therefore stops working within that time. ``last_used_at`` is written at most once a
minute per token.

No token, an unknown one or a revoked one: 401 with ``WWW-Authenticate: Bearer``. A
``read`` token on an admin endpoint: 403. The event stream may pass the token as the
``token`` query parameter, because browsers' EventSource cannot set headers.

Wrong tokens are budgeted per client address (:mod:`monitor.web.ratelimit`): past the
budget a client gets 429 with ``Retry-After`` and its tokens are not looked at until
the budget refills. A request with a body is authenticated by
:mod:`monitor.web.guard` before its body is read; the principal it found is handed to
the dependencies here in the request's state, so the token is checked once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Final

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.store import tokens
from monitor.store.errors import StoreError
from monitor.store.tokens import TokenScope
from monitor.web.ratelimit import FailureLimiter, client_key

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

CACHE_SECONDS: Final = 5.0
_TOUCH_EVERY: Final = 60.0
_CACHE_MAX: Final = 1_000

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token from `clawbeat token create --scope read|admin`.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    scope: TokenScope


class TokenVerifier:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.cache_seconds = CACHE_SECONDS
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._touched: dict[int, float] = {}

    async def verify(self, token: str) -> Principal | None:
        digest = tokens.hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        async with self._sessions() as session:
            row = await tokens.verify_token(session, token=token)
            if row is None:
                self._cache.pop(digest, None)
                return None
            principal = Principal(row.id, row.name, TokenScope(row.scope))
            if now - self._touched.get(row.id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
                self._touched[row.id] = now
                await tokens.touch_token(session, token_id=row.id, now=datetime.now(UTC))
                await session.commit()
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (principal, now + self.cache_seconds)
        return principal


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(
    verifier: TokenVerifier, limiter: FailureLimiter, token: str | None, host: str | None
) -> Principal:
    """The token's principal; HTTPException 401, 429 or 503 otherwise."""
    if not token:
        raise _unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    client = client_key(host)
    wait = limiter.retry_after(client, time.monotonic())
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many wrong tokens from {client}: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    try:
        principal = await verifier.verify(token)
    except StoreError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"cannot verify the token: database unavailable ({exc})",
        ) from exc
    if principal is None:
        limiter.failed(client, time.monotonic())
        raise _unauthorized("invalid or revoked token")
    return principal


async def _principal(request: Request, token: str | None) -> Principal:
    # Already authenticated before its body was read (monitor/web/guard.py).
    checked = getattr(request.state, "principal", None)
    if isinstance(checked, Principal):
        return checked
    state = request.app.state
    host = request.client.host if request.client is not None else None
    return await authenticate(state.verifier, state.auth_limiter, token, host)


async def read_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await _principal(request, credentials.credentials if credentials else None)


async def admin_access(principal: Annotated[Principal, Depends(read_access)]) -> Principal:
    if principal.scope is not TokenScope.ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="this needs an admin token; yours is read-only"
        )
    return principal


async def stream_access(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    token: Annotated[
        str | None,
        Query(
            max_length=128,
            description="The API token, for clients that cannot set headers (EventSource). "
            "Accepted on this endpoint only.",
        ),
    ] = None,
) -> Principal:
    return await _principal(request, credentials.credentials if credentials else token)


Reader = Annotated[Principal, Depends(read_access)]
Admin = Annotated[Principal, Depends(admin_access)]
StreamReader = Annotated[Principal, Depends(stream_access)]
