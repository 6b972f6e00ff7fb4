"""The dashboard's cluster page in a real Chromium, against a real monitor process.

On PostgreSQL, three real LeaseKeepers (in a thread of this test, on the monitor's
database) share the partitions; one is then killed (its loop cancelled without leaving,
as SIGKILL leaves it) and the others take its partitions over when its leases expire.
The page shows the live and gone replicas, every partition's owner, and the takeovers.
On SQLite it says the monitor runs as a single replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.cluster.leases import replica_identity
from monitor.store.database import create_engine_for, make_session_factory
from tests.e2e.test_dashboard_browser import (  # noqa: F401 -- fixtures used by name
    ARTIFACTS,
    FAST,
    _dashboard_url,
    _sign_in,
    browser,
    playwright,
)
from tests.harness.monitor import MonitorProcess, StatusWatch, wait_until
from tests.harness.mosquitto import TestBroker

PARTITIONS = 16
TIMING = KeeperTiming(ttl=2.0, renew_every=0.3, margin=0.5)
NAMES = ("mon-a", "mon-b", "mon-c")


class KeeperThread:
    """Lease keepers running on an event loop of their own, beside the sync browser."""

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.engine = create_engine_for(database_url)
        self.sessions = make_session_factory(self.engine)
        self.keepers: dict[str, LeaseKeeper] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(30)

    def add(self, name: str) -> LeaseKeeper:
        keeper = LeaseKeeper(
            self.sessions,
            owner=replica_identity(name),
            partitions=PARTITIONS,
            timing=TIMING,
            lag=lambda: 0.2,
        )

        async def start() -> None:
            await keeper.start()
            self.tasks[name] = asyncio.create_task(keeper.run())

        self.call(start())
        self.keepers[name] = keeper
        return keeper

    def kill(self, name: str) -> LeaseKeeper:
        async def cancel() -> None:
            task = self.tasks.pop(name)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self.call(cancel())
        return self.keepers.pop(name)

    def owned(self) -> list[set[int]]:
        return [set(k.leases) for k in self.keepers.values()]

    def close(self) -> None:
        async def stop() -> None:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await self.engine.dispose()

        self.call(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _balanced(keepers: KeeperThread) -> bool:
    held = keepers.owned()
    sizes = [len(h) for h in held]
    return set().union(*held) == set(range(PARTITIONS)) and max(sizes) - min(sizes) <= 1


@pytest.fixture
def cluster_monitor(
    broker: TestBroker, database_url: str, tmp_path: Path
) -> Iterator[MonitorProcess]:
    proc = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", **FAST, partitions=PARTITIONS
    )
    watch = StatusWatch(broker)
    try:
        proc.start(probe=watch)
    finally:
        watch.close()
    yield proc
    proc.stop()


def _open_cluster_page(monitor: MonitorProcess, chromium: Browser) -> tuple[Page, list[str]]:
    url = _dashboard_url(monitor)
    created = json.loads(
        monitor.cli("token", "create", "--scope", "admin", "--name", "e2e", "--json").stdout
    )
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, created["token"])
    page.click('nav a[href="/cluster"]')
    expect(page.locator("#who")).to_contain_text("admin", timeout=10_000)
    return page, errors


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_cluster_page_shows_owners_lease_age_and_a_takeover(
    cluster_monitor: MonitorProcess,
    browser: Browser,  # noqa: F811
    database_url: str,
) -> None:
    keepers = KeeperThread(database_url)
    try:
        for name in NAMES:
            keepers.add(name)
        wait_until(lambda: _balanced(keepers), 20, what="three-way spread")
        dead = keepers.kill("mon-c")
        lost = set(dead.leases)
        wait_until(lambda: _balanced(keepers), TIMING.ttl * 4, what="survivors take over")
        survivors = {k.owner for k in keepers.keepers.values()}

        page, errors = _open_cluster_page(cluster_monitor, browser)
        expect(page.locator("#mode")).to_contain_text("cluster · 2 live", timeout=10_000)
        rows = page.locator("#replicas tbody tr")
        expect(rows).to_have_count(3)
        gone = page.locator(f'#replicas tr[data-replica="{dead.owner}"]')
        expect(gone.locator("[data-alive]")).to_have_text("gone")
        expect(gone.locator("[data-partitions]")).to_have_attribute("data-partitions", "")
        for owner in survivors:
            row = page.locator(f'#replicas tr[data-replica="{owner}"]')
            expect(row.locator("[data-alive]")).to_have_text("live")
            expect(row.locator("[data-lag]")).to_have_text("0.2 s")
        cells = page.locator("#partitions .partition")
        expect(cells).to_have_count(PARTITIONS)
        expect(page.locator("#partitions-note")).to_have_text(
            f"{PARTITIONS} partitions, every one owned"
        )
        # Every cell names a survivor, each the owner its keeper holds it as.
        owners = cells.evaluate_all("cs => cs.map(c => c.dataset.owner)")
        assert set(owners) == survivors
        held = {p: k.owner for k in keepers.keepers.values() for p in k.leases}
        assert {p: owners[p] for p in range(PARTITIONS)} == held
        takeovers = page.locator("#moves li.takeover")
        expect(takeovers.first).to_contain_text(f"from {dead.owner}")
        texts = takeovers.all_text_contents()
        assert {int(t.split("partition ")[1].split()[0]) for t in texts} <= lost
        assert errors == []

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "cluster.png"), full_page=True)
    finally:
        keepers.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cluster_page_on_sqlite_says_single_replica(
    cluster_monitor: MonitorProcess,
    browser: Browser,  # noqa: F811
) -> None:
    page, errors = _open_cluster_page(cluster_monitor, browser)
    expect(page.locator("#mode")).to_have_text("single replica", timeout=10_000)
    expect(page.locator("#cluster-note")).to_contain_text("runs alone on SQLite")
    expect(page.locator("#replicas-panel")).to_be_hidden()
    assert errors == []
