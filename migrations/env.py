"""alembic environment for clawbeat.

Normally run through :mod:`monitor.store.migrate`, which opens the connection (with
the engine settings clawbeat uses) and passes it in ``config.attributes``. For
developers running the ``alembic`` command directly
(``alembic -c migrations/alembic.ini -x url=sqlite:///dev.db revision --autogenerate
--rev-id 0002 -m what``) the URL comes from ``-x url=...`` or
``CLAWBEAT_DATABASE_URL``, never from the ini file.

``render_as_batch``: SQLite cannot ALTER most things, so alembic rebuilds the table
instead; on PostgreSQL batch operations are plain ALTERs.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from monitor.schema import metadata
from monitor.store.database import create_engine_for, normalize_url

config = context.config
target_metadata = metadata

if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url_from_command_line() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "CLAWBEAT_DATABASE_URL"
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set CLAWBEAT_DATABASE_URL")
    return url


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine_for(url, for_migrations=True)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def run_offline() -> None:
    context.configure(
        url=normalize_url(_url_from_command_line()),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure_and_run(connection)
    else:
        asyncio.run(_run_with_own_engine(_url_from_command_line()))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
