"""The dashboard's At risk panel and the device page's reasons, in a real Chromium.

A real monitor process scores every half second (``CLAWBEAT_RISK_CYCLE``); a shell
device reporting a nearly empty battery shows up in the fleet page's panel and on its
device page with the reason in words, while a steady device does not.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_dashboard_browser import (  # noqa: F401 -- fixtures used by name
    FAST,
    _dashboard_url,
    _sign_in,
    browser,
    playwright,
)
from tests.harness.monitor import MonitorProcess, Spawned, StatusWatch
from tests.harness.mosquitto import TestBroker

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def risk_monitor(broker: TestBroker, database_url: str, tmp_path: Path) -> Iterator[MonitorProcess]:
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST, risk_cycle=0.5)
    watch = StatusWatch(broker)
    try:
        proc.start(probe=watch)
    finally:
        watch.close()
    yield proc
    proc.stop()


def _beat(shell: subprocess.Popen[bytes], seq: int, battery: float) -> None:
    assert shell.stdin is not None
    body = {"seq": seq, "session": "s1", "interval": 2.0, "metrics": {"battery_pct": battery}}
    shell.stdin.write(json.dumps(body).encode() + b"\n")
    shell.stdin.flush()


def test_at_risk_panel_and_device_reasons(
    broker: TestBroker,
    risk_monitor: MonitorProcess,
    spawned: Spawned,
    browser: Browser,  # noqa: F811
) -> None:
    url = _dashboard_url(risk_monitor)
    created = json.loads(
        risk_monitor.cli("token", "create", "--scope", "admin", "--name", "e2e", "--json").stdout
    )
    shells = {}
    for name in ("pump-9", "pump-10"):
        broker.add_device(name)
        shells[name] = spawned.shell_device(name, "s1")
    seq = 0

    def beat_all() -> None:
        nonlocal seq
        _beat(shells["pump-9"], seq, 3.0)
        _beat(shells["pump-10"], seq, 95.0)
        seq += 1

    beat_all()
    page: Page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, created["token"])
    panel = page.locator("#at-risk")
    # Keep both beating until the panel (refreshed every 30 s, and on load) shows pump-9.
    for _ in range(160):
        beat_all()
        if panel.locator('li[data-id="pump-9"]').count():
            break
        if seq % 20 == 0:
            page.reload()
        page.wait_for_timeout(250)
    item = panel.locator('li[data-id="pump-9"]')
    expect(item).to_contain_text("battery 3 %")
    expect(item.locator(".badge")).to_have_text("high")
    assert panel.locator('li[data-id="pump-10"]').count() == 0, panel.text_content()
    expect(page.locator("#at-risk-note")).to_contain_text("rules")

    page.goto(url + "/devices/pump-9")
    reasons = page.locator("#device-risk")
    # The page reads the device once on load (then every 30 s): beat until it shows.
    for attempt in range(80):
        beat_all()
        if "battery 3 %" in (reasons.text_content() or ""):
            break
        if attempt % 8 == 7:
            page.reload()
        page.wait_for_timeout(250)
    expect(reasons).to_contain_text("battery 3 %")
    expect(page.locator("#device-risk .badge")).to_have_text("high")
    assert errors == []
