"""Helpers shared by the monitor's subcommands: settings from env + flags, DB sessions."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.errors import ConfigError
from monitor.settings import MonitorSettings, settings_problem
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.migrate import check_schema


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (env CLAWBEAT_DATABASE_URL; default sqlite ./clawbeat.db)",
    )


def settings_from(args: argparse.Namespace, **overrides: Any) -> MonitorSettings:
    """Environment first, then any flag the user actually gave."""
    flags = {
        k: v for k, v in vars(args).items() if v is not None and k in MonitorSettings.model_fields
    }
    flags.update(overrides)
    try:
        return MonitorSettings(**flags)
    except ValidationError as exc:
        raise ConfigError(settings_problem(exc)) from exc


@asynccontextmanager
async def db_session(url: str) -> AsyncIterator[AsyncSession]:
    """A session on the monitor's database, refused unless its schema is this clawbeat's.

    Checked first so that a database never migrated (a directory without the default
    ``./clawbeat.db``, a new PostgreSQL database) gets "run `clawbeat db upgrade`"
    instead of "no such table", and no empty SQLite file is left behind.
    """
    await check_schema(url)
    engine = create_engine_for(url)
    try:
        async with make_session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()
