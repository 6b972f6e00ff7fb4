"""Statement helpers every repository shares (the store's and the alerting's).

Upserts (``ON CONFLICT``) are spelled per dialect in SQLAlchemy, and a DML result's
``rowcount`` is what compare-and-set statements are judged by; both live here once.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.errors import StoreError


def dialect_insert(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``table`` that supports ``on_conflict_do_*`` on this database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database dialect {dialect!r}")


def rowcount(result: object) -> int:
    """Rows an UPDATE/DELETE matched; -1 when the driver cannot say."""
    count = getattr(result, "rowcount", -1)
    return count if isinstance(count, int) else -1
