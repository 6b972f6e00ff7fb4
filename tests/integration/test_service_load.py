"""The monitor's start-up load against real databases: state, configuration, failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from monitor.liveness.states import State
from monitor.parts import open_monitor
from monitor.settings import MonitorSettings
from monitor.store import repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.errors import StoreError
from monitor.store.rows import DeviceRow

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def _seed(url: str, count: int) -> None:
    engine = create_engine_for(url)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            rows = [
                DeviceRow(id=f"d{i:03d}", state="online", since=NOW, session="s", last_seq=1)
                for i in range(count)
            ]
            await repository.upsert_devices(session, rows=rows, now=NOW)
            await repository.set_interval_override(session, device_id="d001", interval=5.0, now=NOW)
            await repository.set_maintenance(
                session, device_id="d002", in_maintenance=True, now=NOW
            )
    finally:
        await engine.dispose()


async def test_load_restores_every_device_and_only_the_configuration_there_is(
    database_url: str,
) -> None:
    # More devices than one partition of the stream, so partitions are stitched.
    count = 12_345
    await _seed(database_url, count)
    parts = await open_monitor(MonitorSettings(database_url=database_url))
    await parts.close()
    engine = parts.engine
    assert len(engine) == count
    counts = engine.counts()
    assert counts[State.MAINTENANCE] == 1
    assert counts[State.ONLINE] == count - 1
    snap = engine.snapshot("d001")
    assert snap is not None
    assert snap.override_interval == 5.0
    # Sparse: entries only for the two devices configured.
    assert parts.config.overrides == {"d001": 5.0}
    assert parts.config.maintenance == {"d002": True}
    assert parts.config.pushed == {"d001": 5.0}


async def test_a_database_failing_during_the_load_is_a_store_error(database_url: str) -> None:
    await _seed(database_url, 3)
    # The schema version still says "current", but the devices table is gone: the load
    # itself fails, and must say so as a store error (the CLI prints it, exits 2).
    engine = create_engine_for(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE devices RENAME TO devices_elsewhere"))
    await engine.dispose()
    with pytest.raises(StoreError):
        await open_monitor(MonitorSettings(database_url=database_url))
