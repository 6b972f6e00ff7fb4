"""Device rows from the service to the database: built once per write, newest state."""

from __future__ import annotations

import time

import pytest

from device_client.protocol import Heartbeat
from monitor.parts import open_monitor
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.store import repository

pytestmark = pytest.mark.anyio


async def test_rows_are_built_once_per_write_and_carry_the_newest_state(
    database_url: str,
) -> None:
    settings = MonitorSettings(database_url=database_url)
    service = MonitorService(settings, await open_monitor(settings))
    now, wall = time.monotonic(), time.time()

    def beat(seq: int) -> None:
        hb = Heartbeat(seq=seq, session="s1", interval=5.0, fw=f"fw-{seq}")
        service.heartbeat("d1", hb, retained=False, now=now + seq, wall=wall + seq)

    try:
        beat(1)
        service.drain_dirty(when_taken=True)  # a flush window
        assert service.writer.pending_devices == 1
        # Two more windows before the write-behind wrote the first row (a slow database):
        # nothing is built for them, the device stays dirty in the engine.
        for seq in (2, 3):
            beat(seq)
            service.drain_dirty(when_taken=True)
        assert service.writer.stats.device_puts == 1
        await service.writer.flush()
        # The first window after the write builds one row, with the newest state.
        service.drain_dirty(when_taken=True)
        assert service.writer.stats.device_puts == 2
        await service.writer.flush()
        async with service.sessions() as session:
            stored = await repository.get_device(session, device_id="d1")
        assert stored is not None
        assert (stored.last_seq, stored.fw) == (3, "fw-3")
        # Shutdown drains whatever is dirty, written or not.
        beat(4)
        service.drain_dirty(when_taken=True)
        beat(5)
        service.drain_dirty()
        assert service.writer.stats.device_puts == 4
        assert await service.writer.close()
        async with service.sessions() as session:
            stored = await repository.get_device(session, device_id="d1")
        assert stored is not None
        assert stored.last_seq == 5
    finally:
        await service.writer.close()
