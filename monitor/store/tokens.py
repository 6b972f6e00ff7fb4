"""API bearer tokens: created once, stored as SHA-256 hashes, revoked by id.

A token is ``cbt_`` followed by 43 URL-safe characters (256 random bits). With that much
entropy a plain SHA-256 is enough (no salt, no slow hash: nothing can be guessed), and
it lets a request find its token with one indexed lookup. The token itself is never
stored: :func:`create_token` returns it to be shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.database import translates_errors
from monitor.store.errors import StoreError
from monitor.store.models import ApiToken

TOKEN_PREFIX: Final = "cbt_"  # noqa: S105 - a marker, not a secret
_SHOWN_PREFIX: Final = 12  # "cbt_" + 8 characters: enough to tell tokens apart in a list
NAME_LENGTH: Final = 64


class TokenScope(StrEnum):
    READ = "read"
    """GET endpoints, the dashboard's data, the event stream."""
    ADMIN = "admin"
    """Everything ``read`` may do, plus changes (intervals, classes, maintenance, ...)."""


class TokenNotFound(StoreError):
    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"no API token with id {token_id}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@translates_errors("create API token")
async def create_token(
    session: AsyncSession, *, name: str, scope: TokenScope, now: datetime
) -> tuple[ApiToken, str]:
    """Store a new token; returns its row and the token, which exists nowhere else."""
    name = name.strip()
    if not name or len(name) > NAME_LENGTH:
        raise ValueError(f"token name must be 1-{NAME_LENGTH} characters")
    token = new_token()
    row = ApiToken(
        name=name,
        scope=scope.value,
        token_hash=hash_token(token),
        prefix=token[:_SHOWN_PREFIX],
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row, token


@translates_errors("list API tokens")
async def list_tokens(session: AsyncSession, *, include_revoked: bool = True) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("revoke API token")
async def revoke_token(session: AsyncSession, *, token_id: int, now: datetime) -> bool:
    """Revoke a token; False if it was already revoked. Unknown ids raise TokenNotFound."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if getattr(result, "rowcount", 0) == 1:
        return True
    if await session.get(ApiToken, token_id) is None:
        raise TokenNotFound(token_id)
    return False


@translates_errors("revoke API tokens")
async def revoke_tokens_named(session: AsyncSession, *, name: str, now: datetime) -> int:
    """Revoke every live token called ``name``; returns how many were revoked."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0))


@translates_errors("verify API token")
async def verify_token(session: AsyncSession, *, token: str) -> ApiToken | None:
    """The live (unrevoked) token row matching ``token``, or None.

    The lookup is by hash, so what an attacker could learn from its timing is about
    hashes of guesses, not the token; the final comparison is constant-time anyway.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    digest = hash_token(token)
    row = await session.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == digest)
        .execution_options(populate_existing=True)
    )
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


@translates_errors("record API token use")
async def touch_token(session: AsyncSession, *, token_id: int, now: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))


__all__ = [
    "NAME_LENGTH",
    "TOKEN_PREFIX",
    "ApiToken",
    "TokenNotFound",
    "TokenScope",
    "create_token",
    "hash_token",
    "list_tokens",
    "new_token",
    "revoke_token",
    "revoke_tokens_named",
    "touch_token",
    "verify_token",
]
