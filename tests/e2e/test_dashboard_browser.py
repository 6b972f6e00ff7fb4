"""The dashboard in a real headless Chromium, against a real monitor process.

The monitor is ``python -m monitor.cli monitor`` with its HTTP server on a free port;
devices are the SDK's simulator and a ``mosquitto_pub`` shell device; the token comes
from ``clawbeat token create``. The browser signs in through the page's token dialog,
watches a device go stale without reloading (server-sent events), and saves
screenshots to ``test-artifacts/`` for people to look at.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from monitor.store import repository
from monitor.store.rows import RollupRow
from tests.harness.alert_sinks import WebhookSink
from tests.harness.db_fixtures import open_store
from tests.harness.monitor import MonitorProcess, Spawned, StatusWatch, wait_until
from tests.harness.mosquitto import TestBroker
from tests.harness.postgres import run_coroutine

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOUR = 3600.0
FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": 0.5,
    "default_interval": 1,
    "flush_interval": 0.2,
    "rollup_interval": 0.2,
    "summary_interval": 1,
    "http_bind": "127.0.0.1:0",
}
_LISTENING = re.compile(r"HTTP API and dashboard on (http://\S+?)/?$", re.MULTILINE)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        # Never skip: a green run without a browser would test nothing.
        pytest.fail(
            "the dashboard test needs Chromium: install it with `apt-get install chromium` "
            "(or run `.ci/run`, which installs it); never `playwright install`",
            pytrace=False,
        )
    return path


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    executable = _chromium_path()
    try:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
    except Exception as exc:  # the message names the missing piece
        pytest.fail(f"cannot start {executable}: {exc}", pytrace=False)
    yield browser
    browser.close()


SENSORS = [f"sensor-{i:05d}" for i in range(12)]


def _seed_history(database_url: str) -> None:
    """An hour of heartbeat rollups for the sensors, so the charts have a shape to draw.

    Only the figures before this test started are made up (with a 10-minute dip in
    which a third of the fleet missed half its heartbeats); everything from now on is
    what the monitor really receives.
    """
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    for back in range(1, 60):
        minute = now - timedelta(minutes=back)
        for i, device in enumerate(SENSORS):
            dip = 18 <= back <= 27 and i % 3 == 0
            count = 60 if dip else 120
            latency = 8 + 4 * math.sin(back / 6 + i)
            rows.append(
                RollupRow(
                    device_id=device,
                    minute=minute,
                    count=count,
                    missed=120 - count,
                    latency_count=count,
                    latency_sum_ms=latency * count,
                    latency_max_ms=latency * 3,
                    jitter_count=count,
                    jitter_sum_ms=(3 + (2 if dip else 0)) * count,
                    jitter_max_ms=15.0,
                )
            )

    async def write() -> None:
        async with open_store(database_url) as sessions, sessions() as session:
            await repository.add_rollups(session, rows=rows)
            await session.commit()

    run_coroutine(write)


@pytest.fixture
def monitor(broker: TestBroker, database_url: str, tmp_path: Path) -> Iterator[MonitorProcess]:
    _seed_history(database_url)
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    watch = StatusWatch(broker)
    try:
        proc.start(probe=watch)
    finally:
        watch.close()
    yield proc
    proc.stop()


def _dashboard_url(monitor: MonitorProcess) -> str:
    def found() -> str | None:
        match = _LISTENING.search(monitor.log_path.read_text(errors="replace"))
        return match.group(1) if match else None

    url: str = wait_until(found, 10, what="the monitor's HTTP address in its log")
    return url


def _beat(shell: subprocess.Popen[bytes], seq: int, session: str, *, interval: float = 0.5) -> None:
    assert shell.stdin is not None
    line = json.dumps({"seq": seq, "session": session, "interval": interval, "fw": "pump-2.1"})
    shell.stdin.write(line.encode() + b"\n")
    shell.stdin.flush()


def _sign_in(page: Page, url: str, token: str) -> None:
    page.goto(url + "/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    page.fill("#token-input", token)
    page.click("#token-dialog button[type=submit]")
    expect(page.locator("#who")).to_contain_text("admin", timeout=10_000)


def test_dashboard_shows_a_device_going_stale_without_a_reload(
    broker: TestBroker, monitor: MonitorProcess, spawned: Spawned, browser: Browser
) -> None:
    url = _dashboard_url(monitor)
    created = json.loads(
        monitor.cli("token", "create", "--scope", "admin", "--name", "e2e", "--json").stdout
    )
    fleet_password = "sim-pass-1"
    broker.add_devices(SENSORS, fleet_password)
    spawned.simulate(prefix="sensor-", count=12, password=fleet_password)
    pump = "pump-7"
    broker.add_device(pump)
    shell = spawned.shell_device(pump, "s1")
    seq = 0
    _beat(shell, seq, "s1")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, created["token"])

    row = page.locator(f'#devices tr[data-id="{pump}"]')
    # Keep the pump beating until the page shows it online.
    for _ in range(40):
        seq += 1
        _beat(shell, seq, "s1")
        if row.count() and row.locator(".badge").text_content() == "online":
            break
        page.wait_for_timeout(250)
    expect(row.locator(".badge")).to_have_text("online")
    expect(page.locator('[data-count="total"] .n')).to_have_text("13", timeout=10_000)
    expect(page.locator("#live")).to_contain_text("live")

    # A marker that a reload would wipe out.
    page.evaluate("window.__noReload = 'still here'")
    # The pump stays connected but stops beating: late, then stale.
    expect(row.locator(".badge")).to_have_text("stale", timeout=15_000)
    expect(page.locator('[data-count="stale"] .n')).to_have_text("1")
    expect(page.locator("#feed")).to_contain_text(pump)
    assert page.evaluate("window.__noReload") == "still here", "the page was reloaded"
    # Charts are drawn from the rollups (the current minute has heartbeats).
    page.click('#range button[data-range="1h"]')
    expect(page.locator("#chart-rate svg rect").first).to_be_attached(timeout=10_000)

    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)  # let the flash animation and charts settle
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # The device page: status, timeline, controls; it too follows the device live.
    page.click(f'#devices tr[data-id="{pump}"] a')
    expect(page.locator("#device-state .badge")).to_have_text("stale")
    expect(page.locator("#timeline")).to_contain_text("stale")
    expect(page.locator("#set-interval")).to_be_enabled()
    page.evaluate("window.__noReload = 'still here'")
    for _ in range(3):
        seq += 1
        _beat(shell, seq, "s1")
    expect(page.locator("#device-state .badge")).to_have_text("online", timeout=10_000)
    assert page.evaluate("window.__noReload") == "still here"
    # The controls (admin token): an interval override and maintenance.
    page.fill("#interval", "15")
    page.click("#set-interval")
    expect(page.locator("#manage-msg")).to_contain_text("interval set to 15 s")
    expect(page.locator("#facts")).to_contain_text("15 s · override")
    page.click("#maintenance")
    expect(page.locator("#device-state .badge")).to_have_text("maintenance", timeout=5_000)
    expect(page.locator("#maintenance")).to_have_text("End maintenance")
    page.click("#mute")
    expect(page.locator("#manage-msg")).to_contain_text("alerts muted until")
    page.screenshot(path=str(ARTIFACTS / "device.png"), full_page=True)

    # Phone-sized screen: the fleet page still fits.
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto(url + "/")
    phone.evaluate(f"localStorage.setItem('clawbeat.token', {json.dumps(created['token'])})")
    phone.reload()
    expect(phone.locator('[data-count="total"] .n')).to_have_text("13", timeout=10_000)
    expect(phone.locator("#devices tbody tr")).to_have_count(13)
    expect(phone.locator("#chart-rate svg rect").first).to_be_attached()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the fleet page is {width}px wide on a 390px screen"
    phone.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
    assert not errors, f"JavaScript errors: {errors}"


def test_api_docs_render_from_the_monitor_itself_under_its_csp(
    monitor: MonitorProcess, browser: Browser
) -> None:
    url = _dashboard_url(monitor)
    created = json.loads(
        monitor.cli("token", "create", "--scope", "read", "--name", "docs", "--json").stdout
    )
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(request.url.split("/")[2]))
    # Signed in on the dashboard before: the docs page uses the same token.
    page.goto(url + "/")
    page.evaluate(f"localStorage.setItem('clawbeat.token', {json.dumps(created['token'])})")
    response = page.goto(url + "/api/docs")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]

    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=15_000)
    assert operations.count() >= 25, operations.count()
    expect(page.locator(".information-container")).to_contain_text("clawbeat monitor API")
    expect(page.locator("#swagger-ui")).to_contain_text("/api/devices/{device_id}")

    # "Try it out" on GET /api/me answers with the token's identity.
    me = page.locator(".opblock-get", has=page.locator('[data-path="/api/me"]'))
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    me.locator("button.execute").click()
    expect(me.locator(".responses-wrapper .live-responses-table")).to_contain_text(
        '"scope": "read"', timeout=10_000
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    host = url.split("/")[2]
    assert origins == {host}, f"the docs page reached beyond the monitor: {origins}"
    assert not problems, problems


def _api(url: str, token: str, path: str) -> Any:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _stored_device(url: str, token: str, device: str) -> bool:
    try:
        return bool(_api(url, token, "/api/devices/~" + device).get("first_seen"))
    except urllib.error.HTTPError:
        return False


_SHOWS_AT_LEAST = """([selector, at]) => {
  const node = document.querySelector(selector);
  return !!node && Date.parse(node.getAttribute("data-ago")) >= at;
}"""


def test_last_seen_stays_current_while_a_device_keeps_beating(
    broker: TestBroker, monitor: MonitorProcess, spawned: Spawned, browser: Browser
) -> None:
    """A device that beats and never changes state: its "last seen" follows each beat.

    The event stream carries transitions only, so before the pages asked the engine for
    the rows they show, the fleet table kept the last_seen it loaded with ("1m 0s ago"
    a minute later) and the device page refreshed it every 10 s.
    """
    url = _dashboard_url(monitor)
    token = json.loads(
        monitor.cli("token", "create", "--scope", "admin", "--name", "e2e", "--json").stdout
    )["token"]
    pump = "pump-9"
    broker.add_device(pump)
    shell = spawned.shell_device(pump, "s1")
    seq = 0
    # A long interval: the device stays online between the beats this test sends, so no
    # transition (and no event) ever tells the page about them.
    _beat(shell, seq, "s1", interval=300)

    def last_seen() -> str | None:
        items = _api(url, token, f"/api/live?id={pump}")["items"]
        return items[0]["last_seen"] if items else None

    wait_until(last_seen, 10, what=f"{pump} tracked")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, token)
    row = page.locator(f'#devices tr[data-id="{pump}"]')
    expect(row.locator(".badge")).to_have_text("online", timeout=10_000)
    page.evaluate("window.__noReload = 'still here'")

    def follows(selector: str, rounds: int) -> None:
        nonlocal seq
        for _ in range(rounds):
            before = last_seen()
            seq += 1
            _beat(shell, seq, "s1", interval=300)

            def newer(before: str | None = before) -> str | None:
                now_seen = last_seen()
                return now_seen if now_seen != before else None

            seen = wait_until(newer, 10, what="the monitor to receive the beat")
            # Browsers parse times to whole milliseconds.
            at_ms = math.floor(datetime.fromisoformat(seen).timestamp() * 1000)
            # The pages poll every second; 5 s is room for a loaded machine, and half
            # the device page's old 10-second refresh.
            page.wait_for_function(_SHOWS_AT_LEAST, arg=[selector, at_ms], timeout=5_000)
            assert page.evaluate("window.__noReload") == "still here", "the page reloaded"

    follows(f'#devices tr[data-id="{pump}"] td.seen', 3)
    expect(row.locator("td.seen")).to_have_text(re.compile(r"just now|^[0-9]s ago"))

    page.click(f'#devices tr[data-id="{pump}"] a')
    expect(page.locator("#device-state .badge")).to_have_text("online")
    page.evaluate("window.__noReload = 'still here'")
    follows('#facts [data-fact="last_seen"]', 4)
    assert not errors, f"JavaScript errors: {errors}"


ALERTING = {
    **FAST,
    "storm_window": 1.5,
    "alert_poll_interval": 0.2,
    "alert_retry_base": 0.3,
    "alert_retry_cap": 1,
    "alert_max_attempts": 2,
    "alert_send_timeout": 5,
    "repeat_every": 0,
    "escalate_after": 0,
}


@pytest.fixture
def alerting_monitor(
    broker: TestBroker, database_url: str, tmp_path: Path
) -> Iterator[MonitorProcess]:
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **ALERTING)
    watch = StatusWatch(broker)
    try:
        proc.start(probe=watch)
    finally:
        watch.close()
    yield proc
    proc.stop()


def _overflowing(page: Page, container: str, figure: str) -> list[str]:
    """Figures in ``container`` wider than their card, or cards sticking out of it."""
    found: list[str] = page.evaluate(
        """([container, figure]) => {
             const box = document.querySelector(container).getBoundingClientRect();
             return [...document.querySelectorAll(container + " " + figure)].filter((node) => {
               const card = node.parentElement.getBoundingClientRect();
               return node.scrollWidth > node.clientWidth + 1 || card.right > box.right + 1
                 || card.left < box.left - 1;
             }).map((node) => node.textContent);
           }""",
        [container, figure],
    )
    return found


def test_alerts_page_events_on_load_and_uptime_cards(
    broker: TestBroker, alerting_monitor: MonitorProcess, spawned: Spawned, browser: Browser
) -> None:
    monitor = alerting_monitor
    url = _dashboard_url(monitor)

    def token(scope: str) -> str:
        made = monitor.cli("token", "create", "--scope", scope, "--name", f"e2e-{scope}", "--json")
        value: str = json.loads(made.stdout)["token"]
        return value

    admin, reader = token("admin"), token("read")
    hooks = WebhookSink()
    hooks.start()
    try:
        monitor.cli("channels", "add", "ops-hook", hooks.url("/ops"))
        # Nothing listens on port 9: every attempt fails, and after two it gives up.
        monitor.cli("channels", "add", "dead-hook", "json://user:hunter22@127.0.0.1:9/x")
        pump, steady = "pump-3", "steady-1"
        broker.add_device(pump)
        broker.add_device(steady)
        pump_shell = spawned.shell_device(pump, "s1")
        steady_shell = spawned.shell_device(steady, "s1")
        _beat(steady_shell, 0, "s1", interval=300)
        for seq in range(3):
            _beat(pump_shell, seq, "s1")
        # The pump falls silent: late, stale, and a critical alert to both channels.
        hooks.wait(lambda h: pump in h.title, timeout=30)

        def dead_given_up() -> bool:
            rows = _api(url, admin, "/api/deliveries")
            return any(d["channel"] == "dead-hook" and d["state"] == "failed" for d in rows)

        wait_until(dead_given_up, 30, what="the dead channel to give up")

        # The fleet page opens with the transitions that already happened.
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _sign_in(page, url, admin)
        feed = page.locator("#feed")
        expect(feed.locator(f'li:has(a:text-is("{pump}")) [data-state="stale"]')).to_have_count(1)
        expect(feed.locator(f'li:has(a:text-is("{steady}"))')).to_have_count(1)
        expect(feed).not_to_contain_text("Loading")
        expect(page.locator("#alerts-link .n")).to_have_text("1", timeout=10_000)

        # The alerts page: the open alert, its deliveries, acknowledgement.
        page.click("#alerts-link")
        row = page.locator("#open-alerts tbody tr", has_text=pump)
        expect(row).to_have_count(1)
        expect(row.locator("[data-severity]")).to_have_text("critical")
        expect(row.locator("[data-state]")).to_have_text("stale")
        expect(row).to_contain_text("ago")
        deliveries = page.locator("#deliveries tbody")
        expect(deliveries.locator("tr", has_text="ops-hook").first).to_contain_text("sent")
        dead = deliveries.locator("tr", has_text="dead-hook").first
        expect(dead.locator("[data-delivery]")).to_have_text("failed")
        expect(dead.locator("td.error")).not_to_be_empty()
        expect(deliveries).not_to_contain_text("hunter22")  # channel secrets stay hidden
        button = row.locator("button[data-ack]")
        expect(button).to_be_enabled()
        button.click()
        expect(page.locator("#ack-msg")).to_contain_text("acknowledged")
        expect(row.locator("td.ack")).to_contain_text("by api:e2e-admin")
        page.screenshot(path=str(ARTIFACTS / "alerts.png"), full_page=True)
        (stored,) = _api(url, admin, "/api/alerts?status=open")
        assert stored["acknowledged_by"] == "api:e2e-admin"

        # A read token sees the page but cannot acknowledge.
        read_page = browser.new_page(viewport={"width": 1400, "height": 1000})
        read_page.goto(url + "/")
        read_page.evaluate(f"localStorage.setItem('clawbeat.token', {json.dumps(reader)})")
        read_page.goto(url + "/alerts")
        expect(read_page.locator("#admin-note")).to_contain_text("admin token")
        expect(read_page.locator("#open-alerts tbody tr", has_text=pump)).to_contain_text(
            "by api:e2e-admin"
        )

        # Uptime cards: "100.00%" fits its card at every width.
        page.goto(url + "/devices/" + steady)
        expect(page.locator("#uptime .pct").first).to_have_text("100.00%")
        for width in (1400, 1000, 901, 390):
            page.set_viewport_size({"width": width, "height": 1000})
            page.wait_for_timeout(100)
            assert not _overflowing(page, "#uptime", ".pct"), f"uptime overflows at {width}px"
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        hooks.stop()


def test_devices_named_dot_and_dot_dot_open_from_the_dashboard(
    broker: TestBroker, monitor: MonitorProcess, spawned: Spawned, browser: Browser
) -> None:
    # Browsers drop "." and ".." path segments (percent-encoded too), so links to
    # /devices/.. used to open the fleet page, and the device page's API calls failed.
    url = _dashboard_url(monitor)
    token = json.loads(
        monitor.cli("token", "create", "--scope", "admin", "--name", "e2e", "--json").stdout
    )["token"]
    shells = {}
    for device in (".", ".."):
        broker.add_device(device)
        shells[device] = spawned.shell_device(device, "s1")
        _beat(shells[device], 0, "s1", interval=300)
    for device in (".", ".."):
        # The page changes the device below, which needs its row (one flush after it beat).
        wait_until(
            functools.partial(_stored_device, url, token, device),
            10,
            what=f"device {device!r} stored",
        )
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, token)
    for device in (".", ".."):
        page.goto(url + "/")
        link = page.locator(f'#devices tr[data-id="{device}"] a')
        expect(link).to_have_text(device, timeout=10_000)
        link.click()
        expect(page.locator("#device-id")).to_have_text(device)
        expect(page.locator("#device-state .badge")).to_have_text("online")
        expect(page.locator('#facts [data-fact="session"]')).to_have_text("s1")
        expect(page.locator("#timeline")).to_contain_text("first-seen")
        expect(page.locator("#load-error")).to_be_empty()
        # A change from the page reaches that device, not another path.
        page.fill("#tags", f"dots-{len(device)}")
        page.click("#set-tags")
        expect(page.locator("#manage-msg")).to_contain_text("tags saved")
        stored = _api(url, token, "/api/devices/~" + device)
        assert stored["id"] == device
        assert stored["tags"] == [f"dots-{len(device)}"]
        # Its last heartbeat follows the device (GET /api/live with the id in the query).
        _beat(shells[device], 1, "s1", interval=300)
        expect(page.locator('#facts [data-fact="last_seq"]')).to_have_text("1", timeout=5_000)
    assert not errors, f"JavaScript errors: {errors}"


def _stamped_beat(shell: subprocess.Popen[bytes], seq: int, *, skew: float) -> None:
    """A heartbeat whose ``ts`` comes from a clock ``skew`` seconds off."""
    assert shell.stdin is not None
    body = {"seq": seq, "session": "s1", "interval": 300, "ts": time.time() + skew}
    shell.stdin.write(json.dumps(body).encode() + b"\n")
    shell.stdin.flush()


def test_device_page_shows_a_wrong_clock_and_latency_leaves_it_out(
    broker: TestBroker, monitor: MonitorProcess, spawned: Spawned, browser: Browser
) -> None:
    """One device an hour ahead, one an hour behind.

    Latency used to be receive time minus ts: 3,600,000 ms for one, -3,600,000 ms for the
    other, which scaled the fleet's chart to millions and cancelled out in its average.
    """
    url = _dashboard_url(monitor)
    token = json.loads(
        monitor.cli("token", "create", "--scope", "admin", "--name", "e2e", "--json").stdout
    )["token"]
    skews = {"clock-ahead": HOUR, "clock-behind": -HOUR}
    shells = {}
    for device in skews:
        broker.add_device(device)
        shells[device] = spawned.shell_device(device, "s1")
    for seq in range(3):
        for device, skew in skews.items():
            _stamped_beat(shells[device], seq, skew=skew)

    def estimated() -> dict[str, Any] | None:
        items = _api(url, token, "/api/devices?q=clock-")["items"]
        found = {d["id"]: d for d in items if d["clock_offset"] is not None}
        return (
            found if set(found) == set(skews) and all(d["last_seq"] == 2 for d in items) else None
        )

    devices = wait_until(estimated, 10, what="both clock offsets estimated")
    for device, skew in skews.items():
        # Within the transport delay (milliseconds; seconds on a loaded machine).
        assert devices[device]["clock_offset"] == pytest.approx(skew, abs=5.0)
        assert devices[device]["clock_skewed"] is True

    def rolled_up() -> bool:
        return all(
            sum(p["count"] for p in _api(url, token, f"/api/devices/{d}/heartbeats")["points"]) == 3
            for d in skews
        )

    wait_until(rolled_up, 10, what="the six heartbeats in the rollups")
    fleet = _api(url, token, "/api/fleet/heartbeats?range=1h")
    slowest = max(p["latency_max_ms"] for p in fleet["points"] if p["latency_max_ms"] is not None)
    assert 0 <= slowest < 5_000, f"clock skew leaked into latency: {slowest} ms"
    metrics = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    assert re.search(r"^clawbeat_devices_clock_skewed 2\.0$", metrics, re.MULTILINE), metrics

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _sign_in(page, url, token)
    for device, side in (("clock-ahead", "ahead"), ("clock-behind", "behind")):
        page.goto(f"{url}/devices/{device}")
        offset = page.locator('#facts [data-fact="clock_offset"]')
        # An hour, give or take the transport delay.
        shown = re.compile(rf"^(59 min 5\d s|1 h 0 min \d s) {side} · wrong, kept out of latency$")
        expect(offset).to_have_text(shown, timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "device-clock-offset.png"), full_page=True)
    assert not errors, f"JavaScript errors: {errors}"
