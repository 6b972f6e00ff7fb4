"""Alerting end to end: a real monitor, broker and database; real mail and webhook servers.

Devices are real processes (the SDK's ``clawbeat device``, ``mosquitto_pub``, the fleet
simulator) killed with SIGKILL; notifications travel through apprise to an SMTP server
(aiosmtpd) and an HTTP server started by the test. What is checked is what people and
ops tools receive: mails, webhook posts, and the events on ``clawbeat/v1/alerts``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.alerts import api
from monitor.alerts.models import AlertDelivery
from monitor.alerts.schedule import DAYS
from monitor.alerts.shell import CHECKPOINT_EVERY
from monitor.store.database import create_engine_for, make_session_factory
from tests.harness.alert_sinks import Hook, SmtpSink, WebhookSink, free_port
from tests.harness.monitor import (
    MonitorProcess,
    Spawned,
    StatusWatch,
    read_devices,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.harness.postgres import run_coroutine
from tests.mqtt_helpers import MqttProbe

# Fast timings: devices beat every 0.5 s; a drop is held 1.5 s before it is alerted.
STORM_WINDOW = 1.5
WILL_HOLD = 0.5
POLL = 0.2
FAST: dict[str, object] = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": WILL_HOLD,
    "default_interval": 1,
    "flush_interval": 0.2,
    "summary_interval": 1,
    "storm_window": STORM_WINDOW,
    "alert_poll_interval": POLL,
    "alert_retry_base": 0.3,
    "alert_retry_cap": 1,
    "alert_send_timeout": 5,
    "repeat_every": 0,
    "escalate_after": 0,
}
# Long enough for a decision to be made and delivered had there been one: the storm
# window plus a few poll rounds, with a margin for a loaded machine.
QUIET_FOR = STORM_WINDOW + 5 * POLL + 1.5
_T = TypeVar("_T")
ROOT = "clawbeat/v1"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class AlertWatch(StatusWatch):
    """The ops client: status topics, monitor presence, and the alert event stream."""

    def __init__(self, broker: TestBroker) -> None:
        super().__init__(broker)
        # Not resubscribed after a reconnect: these tests never restart the broker.
        self.subscribe(f"{self.root}/alerts")

    def alerts(self) -> list[dict[str, Any]]:
        topic = f"{self.root}/alerts"
        return [json.loads(m.payload) for m in self.matching(lambda m: m.topic == topic)]

    def wait_alert(
        self, event: str, *, device: str | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        topic = f"{self.root}/alerts"

        def match(m: Any) -> bool:
            if m.topic != topic:
                return False
            body = json.loads(m.payload)
            return bool(body["event"] == event and (device is None or body["device"] == device))

        found = self.wait_for(match, timeout)
        assert not found[-1].retain
        body: dict[str, Any] = json.loads(found[-1].payload)
        return body


@pytest.fixture
def watch(broker: TestBroker) -> Iterator[AlertWatch]:
    probe = AlertWatch(broker)
    yield probe
    probe.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def hooks() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    yield sink
    sink.stop()


def make_monitor(
    broker: TestBroker, database_url: str, tmp_path: Path, **overrides: object
) -> MonitorProcess:
    return MonitorProcess(broker, database_url, tmp_path / "monitor.log", **{**FAST, **overrides})


@pytest.fixture
def monitors() -> Iterator[list[MonitorProcess]]:
    started: list[MonitorProcess] = []
    yield started
    for proc in started:
        proc.stop()


def start(proc: MonitorProcess, watch: AlertWatch, monitors: list[MonitorProcess]) -> None:
    monitors.append(proc)
    proc.start(probe=watch)


def configure(database_url: str, action: Callable[[AsyncSession], Awaitable[object]]) -> None:
    """Change alerting configuration in-process (the CLI is tested where it matters)."""

    async def run(session: AsyncSession) -> None:
        await action(session)
        await session.commit()

    query(database_url, run)


def query(database_url: str, action: Callable[[AsyncSession], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        engine = create_engine_for(database_url)
        try:
            async with make_session_factory(engine)() as session:
                return await action(session)
        finally:
            await engine.dispose()

    return run_coroutine(run)


def add_channel(database_url: str, name: str, url: str) -> None:
    configure(database_url, lambda s: api.add_channel(s, name=name, url=url))


def stored_alerts(proc: MonitorProcess) -> list[dict[str, Any]]:
    out = proc.cli("alerts", "list", "--all", "--json", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def monitor_logged(proc: MonitorProcess, text: str, timeout: float = 20) -> None:
    wait_until(lambda: text in proc.log_path.read_text(), timeout, what=repr(text))


def on_path(path: str) -> Callable[[Hook], bool]:
    return lambda hook: hook.path == path


def titled(text: str) -> Any:
    return lambda item: text in item.title


# --- email and webhook for a killed device -----------------------------------------------


def test_a_killed_device_reaches_mail_and_webhook_then_one_recovery_each(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    smtp: SmtpSink,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev = "alert-mail-1"
    broker.add_device(dev)
    monitor = make_monitor(broker, database_url, tmp_path)
    monitor.cli("channels", "add", "ops-mail", smtp.url())
    monitor.cli("channels", "add", "ops-hook", hooks.url("/ops"))
    listed = monitor.cli("channels", "list").stdout
    assert "ops-mail" in listed
    assert "ops-hook" in listed
    start(monitor, watch, monitors)

    mark = time.monotonic()
    device = spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)

    device.send_signal(signal.SIGKILL)
    device.wait(5)
    (mail,) = smtp.wait(lambda m: dev in m.subject)
    assert mail.subject == f"[clawbeat] {dev} is offline"
    assert "connection-lost" in mail.body
    assert mail.recipients == ("ops@example.com",)
    (post,) = hooks.wait(titled(dev))
    assert post.title == f"[clawbeat] {dev} is offline"
    assert post.path == "/ops"
    assert post.type == "failure"
    event = watch.wait_alert("down", device=dev)
    assert event["state"] == "offline"
    assert event["severity"] == "critical"
    assert sorted(event["channels"]) == ["ops-hook", "ops-mail"]

    spawned.device(dev)
    smtp.wait(lambda m: dev in m.subject, count=2)
    hooks.wait(titled(dev), count=2)
    watch.wait_alert("recovered", device=dev)
    time.sleep(2)  # nothing more may follow
    assert smtp.subjects() == [f"[clawbeat] {dev} is offline", f"[clawbeat] {dev} recovered"]
    assert hooks.titles() == [f"[clawbeat] {dev} is offline", f"[clawbeat] {dev} recovered"]
    (alert,) = stored_alerts(monitor)
    assert alert["status"] == "resolved"
    assert alert["device"] == dev
    deliveries = monitor.cli("alerts", "deliveries").stdout
    assert "4 sent" in deliveries
    assert "0 failed" in deliveries


def delivery_rows(database_url: str, alert_id: int) -> list[AlertDelivery]:
    """One alert's deliveries as stored, oldest first."""

    async def read(session: AsyncSession) -> list[AlertDelivery]:
        rows = await api.list_deliveries(session, alert_id=alert_id, limit=None)
        return sorted(rows, key=lambda r: r.id)

    return query(database_url, read)


def deliveries(proc: MonitorProcess) -> list[dict[str, Any]]:
    out = proc.cli("alerts", "deliveries", "--json", "--limit", "1000").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# --- a new database meets the broker's retained messages of long-dead devices ----------------


@SQLITE_ONLY
def test_devices_never_seen_alive_by_this_database_are_shown_but_page_nobody(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    ghost, will, alive = "alert-ghost-1", "alert-ghost-2", "alert-ghost-live"
    for dev in (ghost, will, alive):
        broker.add_device(dev)
    # What devices that died long ago left on the broker, before this database existed.
    spawned.publish(ghost, "heartbeat", json.dumps({"seq": 9, "session": "old-1", "interval": 1}))
    spawned.publish(will, "heartbeat", json.dumps({"seq": 3, "session": "old-2", "interval": 1}))
    spawned.publish(
        will,
        "presence",
        json.dumps({"state": "offline", "session": "old-2", "reason": "connection-lost"}),
    )
    monitor = make_monitor(broker, database_url, tmp_path)
    add_channel(database_url, "pager", hooks.url("/pager"))
    add_channel(database_url, "log", hooks.url("/log"))
    monitor.cli("rules", "add", "page", "--channel", "pager")
    monitor.cli("rules", "add", "everything", "--channel", "log", "--min-severity", "warning")
    start(monitor, watch, monitors)

    # Shown as what they are, after warm-up...
    watch.wait_state(ghost, "stale", after=0)
    watch.wait_state(will, "offline", after=0)

    def unseen() -> list[dict[str, Any]] | None:
        found = [a for a in stored_alerts(monitor) if a["device"] in (ghost, will)]
        return found if len(found) == 2 else None

    alerts = wait_until(unseen, 20, what="two never-seen alerts")
    for alert in alerts:
        assert (alert["status"], alert["severity"]) == ("open", "warning")
        assert alert["details"]["never_seen"] is True
    # ... with the reason they are not paged for, to the one rule that asks for them.
    logged = hooks.wait(on_path("/log"), count=2)
    assert sorted(h.title for h in logged) == [
        f"[clawbeat] {ghost} is stale",
        f"[clawbeat] {will} is offline",
    ]
    for post in logged:
        assert "never seen alive by this database" in post.message

    # A device this database has seen alive pages as always: the test can tell.
    mark = time.monotonic()
    device = spawned.device(alive)
    watch.wait_state(alive, "online", after=mark)
    device.kill()
    device.wait(5)
    (page,) = hooks.wait(on_path("/pager"))
    assert page.title == f"[clawbeat] {alive} is offline"
    time.sleep(QUIET_FOR)
    assert hooks.titles("/pager") == [f"[clawbeat] {alive} is offline"]


# --- a failing channel, retried across a monitor restart -------------------------------------


@SQLITE_ONLY
def test_a_failing_channel_is_retried_with_backoff_and_delivered_once_across_a_restart(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev = "alert-retry-1"
    broker.add_device(dev)
    flaky = WebhookSink(port=free_port())  # its server is down for now
    first = make_monitor(broker, database_url, tmp_path, alert_retry_base=0.4)
    add_channel(database_url, "flaky", flaky.url("/flaky"))
    add_channel(database_url, "steady", hooks.url("/steady"))
    start(first, watch, monitors)
    mark = time.monotonic()
    device = spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    device.kill()
    device.wait(5)
    hooks.wait(titled(f"{dev} is offline"))  # the working channel gets it at once

    def flaky_row() -> dict[str, Any] | None:
        rows = [d for d in deliveries(first) if d["channel"] == "flaky"]
        return rows[0] if rows and rows[0]["attempts"] >= 3 else None

    row = wait_until(flaky_row, 20, every=0.3, what="three failed attempts")
    assert row["state"] in ("pending", "sending")
    assert row["last_error"]
    assert first.cli("alerts", "deliveries", "--state", "pending").returncode == 0

    # Restart the monitor while the delivery is still pending, then bring the server up.
    assert first.terminate() == 0
    second = make_monitor(broker, database_url, tmp_path, alert_retry_base=0.4)
    start(second, watch, monitors)
    flaky.start()
    try:
        flaky.wait(titled(f"{dev} is offline"), timeout=20)
        time.sleep(3)  # a duplicate would come within the retry cap
        assert flaky.titles() == [f"[clawbeat] {dev} is offline"]
    finally:
        flaky.stop()
    assert hooks.titles() == [f"[clawbeat] {dev} is offline"]
    rows = deliveries(second)
    assert {d["state"] for d in rows} == {"sent"}
    assert len(rows) == 2
    assert next(d["attempts"] for d in rows if d["channel"] == "flaky") >= 4
    # The alert was decided once, before the restart: one event on MQTT.
    assert [a["event"] for a in watch.alerts()] == ["down"]


# --- a channel outage: the queue goes out in order ------------------------------------------


@SQLITE_ONLY
def test_notifications_queued_during_a_channel_outage_arrive_in_the_order_decided(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    monitors: list[MonitorProcess],
) -> None:
    dev = "alert-order-1"
    broker.add_device(dev)
    down = WebhookSink(port=free_port())  # its server is down for now
    # A long retry cap: the oldest delivery is deep in its backoff when the server comes
    # back, the newest about to be retried.
    monitor = make_monitor(
        broker,
        database_url,
        tmp_path,
        escalate_after=1,
        lost_after=6,
        alert_retry_base=0.5,
        alert_retry_cap=4,
    )
    add_channel(database_url, "primary", down.url("/primary"))
    add_channel(database_url, "boss", down.url("/boss"))
    monitor.cli("rules", "add", "main", "--channel", "primary", "--escalate-to", "boss")
    start(monitor, watch, monitors)
    mark = time.monotonic()
    device = spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    device.kill()
    device.wait(5)
    # Offline, escalated, lost, then back: every notification fails meanwhile.
    watch.wait_alert("down", device=dev)
    watch.wait_alert("escalated", device=dev)
    watch.wait_alert("worse", device=dev)
    mark = time.monotonic()
    spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    (alert,) = stored_alerts(monitor)

    def all_queued() -> list[AlertDelivery] | None:
        rows = delivery_rows(database_url, alert["id"])
        recovered = [r for r in rows if r.event == "recovered"]
        return rows if len(recovered) == 2 and rows[0].attempts >= 3 else None

    rows = wait_until(all_queued, 30, what="every notification queued, the first retried")
    assert {r.state for r in rows} <= {"pending", "sending"}
    down.start()
    try:
        for path in ("/primary", "/boss"):
            down.wait(on_path(path), count=3, timeout=30)
        time.sleep(QUIET_FOR)
    finally:
        down.stop()
    assert down.titles("/primary") == [
        f"[clawbeat] {dev} is offline",
        f"[clawbeat] {dev} is now lost",
        f"[clawbeat] {dev} recovered",
    ]
    assert down.titles("/boss") == [
        f"[clawbeat] ESCALATED: {dev} is offline",
        f"[clawbeat] {dev} is now lost",
        f"[clawbeat] {dev} recovered",
    ]
    # Each channel got them in the order they were decided.
    for channel, path in (("primary", "/primary"), ("boss", "/boss")):
        decided = [
            r.title for r in delivery_rows(database_url, alert["id"]) if r.channel == channel
        ]
        assert down.titles(path) == decided
    for post in down.matching(titled("recovered")):
        assert "Acknowledge" not in post.message
        assert f"Alert #{alert['id']} is resolved." in post.message


# --- a storm: 500 devices lose the broker at once ---------------------------------------------


@SQLITE_ONLY
def test_500_devices_dropping_at_once_give_one_outage_alert_and_one_recovery(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    prefix, count, password = "storm-", 500, "storm-password"
    broker.add_devices([f"{prefix}{i:05d}" for i in range(count)], password)
    monitor = make_monitor(broker, database_url, tmp_path, storm_window=3)
    add_channel(database_url, "ops", hooks.url("/ops"))
    start(monitor, watch, monitors)

    def all_online() -> bool:
        states = watch.latest_all()
        return sum(1 for s in states.values() if s["state"] == "online") == count

    fleet = spawned.simulate(prefix=prefix, count=count, password=password, interval=1.0)
    wait_until(all_online, 30, every=0.2, what="500 devices online")

    fleet.send_signal(signal.SIGKILL)  # every connection dies: 500 wills at once
    fleet.wait(10)
    (post,) = hooks.wait(titled("outage"))
    assert post.title == "[clawbeat] outage: 500 devices down"
    assert "500 offline (connection-lost)" in post.message
    event = watch.wait_alert("outage")
    assert event["devices"] == 500
    time.sleep(4)  # more than the storm window: nothing per device follows
    assert hooks.titles() == ["[clawbeat] outage: 500 devices down"]

    spawned.simulate(prefix=prefix, count=count, password=password, interval=1.0)
    hooks.wait(titled("outage over"), timeout=30)
    watch.wait_alert("outage-over")
    time.sleep(4)
    assert hooks.titles() == [
        "[clawbeat] outage: 500 devices down",
        "[clawbeat] outage over: all 500 devices back",
    ]
    assert [a["event"] for a in watch.alerts()] == ["outage", "outage-over"]
    (alert,) = stored_alerts(monitor)
    assert (alert["kind"], alert["status"]) == ("outage", "resolved")


# --- restarts of the monitor with a healthy fleet ----------------------------------------------


@SQLITE_ONLY
def test_monitor_restarts_with_a_healthy_fleet_send_nothing_and_a_held_drop_survives_a_crash(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    prefix, count, password = "calm-", 20, "calm-password"
    broker.add_devices([f"{prefix}{i:05d}" for i in range(count)], password)
    sdk = "calm-sdk"
    broker.add_device(sdk)
    first = make_monitor(broker, database_url, tmp_path)
    add_channel(database_url, "ops", hooks.url("/ops"))
    start(first, watch, monitors)
    spawned.simulate(prefix=prefix, count=count, password=password, interval=0.5)
    device = spawned.device(sdk)
    wait_until(
        lambda: sum(1 for s in watch.latest_all().values() if s["state"] == "online") == count + 1,
        20,
        what="fleet online",
    )
    time.sleep(1)

    assert first.terminate() == 0  # a clean restart
    second = make_monitor(broker, database_url, tmp_path)
    start(second, watch, monitors)
    time.sleep(3.5)  # warm-up, storm window, a few follow-up passes
    second.kill()  # a crash, then a restart
    third = make_monitor(broker, database_url, tmp_path)
    start(third, watch, monitors)
    time.sleep(3.5)
    assert hooks.posts == []
    assert watch.alerts() == []
    assert stored_alerts(third) == []

    # A device dies and the monitor crashes while the drop is still held (storm window):
    # the next monitor judges it again from the checkpoint, and alerts exactly once.
    mark = time.monotonic()
    device.kill()
    device.wait(5)
    watch.wait_state(sdk, "offline", after=mark)
    time.sleep(0.5)  # the device row says offline now (flush_interval 0.2 s)
    third.kill()
    assert hooks.posts == []
    fourth = make_monitor(broker, database_url, tmp_path)
    start(fourth, watch, monitors)
    hooks.wait(titled(sdk))
    assert "1 devices went down undecided before the restart" in fourth.log_path.read_text()
    time.sleep(2.5)
    assert hooks.titles() == [f"[clawbeat] {sdk} is offline"]
    assert [a["event"] for a in watch.alerts()] == ["down"]


# --- flapping ------------------------------------------------------------------------------------


def _beat(shell: subprocess.Popen[bytes], seq: int, session: str) -> None:
    assert shell.stdin is not None
    shell.stdin.write(
        json.dumps({"seq": seq, "session": session, "interval": 0.5}).encode() + b"\n"
    )
    shell.stdin.flush()


@SQLITE_ONLY
def test_a_flapping_device_gives_one_flapping_alert_then_one_stable_notice(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev = "alert-flap-1"
    broker.add_device(dev)
    monitor = make_monitor(
        broker, database_url, tmp_path, flap_changes=4, flap_window=5, storm_window=2
    )
    add_channel(database_url, "ops", hooks.url("/ops"))
    start(monitor, watch, monitors)

    for cycle in range(5):  # connect, beat, die: offline, then a new connection
        session = f"flap-{cycle}"
        shell = spawned.shell_device(dev, session)
        _beat(shell, 0, session)
        watch.wait_state(dev, "online", after=time.monotonic() - 0.3)
        time.sleep(0.4)
        mark = time.monotonic()
        shell.kill()
        shell.wait(5)
        watch.wait_state(dev, "offline", after=mark)
    # The 5th drop was the 9th change: flapping since the 5th; one alert only.
    (flapping,) = hooks.wait(titled("flapping"))
    assert flapping.title == f"[clawbeat] {dev} is flapping"
    watch.wait_alert("flapping", device=dev)

    # Back for good: beating steadily; stable after flap_window without a change.
    shell = spawned.shell_device(dev, "steady")
    for seq in range(16):
        _beat(shell, seq, "steady")
        time.sleep(0.4)
    hooks.wait(titled("stopped flapping"), timeout=10)
    assert hooks.titles() == [
        f"[clawbeat] {dev} is flapping",
        f"[clawbeat] {dev} stopped flapping: online",
    ]
    assert [a["event"] for a in watch.alerts()] == ["flapping", "stable"]


# --- maintenance windows --------------------------------------------------------------------------


@SQLITE_ONLY
def test_maintenance_silences_the_window_and_alerts_a_device_still_down_when_it_ends(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev, other = "alert-maint-1", "alert-maint-2"
    broker.add_device(dev)
    broker.add_device(other)
    monitor = make_monitor(broker, database_url, tmp_path)
    add_channel(database_url, "ops", hooks.url("/ops"))
    start(monitor, watch, monitors)
    mark = time.monotonic()
    device = spawned.device(dev)
    neighbour = spawned.device(other)
    watch.wait_state(dev, "online", after=mark)
    watch.wait_state(other, "online", after=mark)

    # A recurring window that never covers now (three days from today, within one day),
    # and one ended by hand: both harmless.
    day = DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    monitor.cli("maintenance", "add", "--all", "--every", f"{day} 03:00", "--for", "1h")
    monitor.cli("maintenance", "add", "--device", other, "--for", "1h")
    monitor.cli("maintenance", "end", "2")
    # Far longer than the test: it is ended by hand once the checks inside it are done,
    # so none of them races its end.
    added = monitor.cli("maintenance", "add", "--device", dev, "--for", "1h", "--note", "swap")
    assert "maintenance window #3: device alert-maint-1" in added.stdout
    # Read after #2 ended, so the monitor knows that one is over too.
    monitor_logged(monitor, "maintenance #3 in effect: device alert-maint-1")

    # Inside the window: the device dies. Nothing.
    device.kill()
    device.wait(5)
    watch.wait_state(dev, "offline", after=mark)
    listed = monitor.cli("maintenance", "list").stdout
    assert "swap" in listed
    assert f"every {day} 03:00 UTC for 1h" in listed
    assert "device alert-maint-2" not in listed  # ended
    time.sleep(QUIET_FOR)  # the drop would have been alerted by now
    assert hooks.posts == []
    # The window ends with the device still down: it is alerted now, once.
    monitor.cli("maintenance", "end", "3")
    monitor_logged(monitor, "maintenance #3 no longer in effect")
    (post,) = hooks.wait(titled(dev))
    assert post.title == f"[clawbeat] {dev} is offline"
    assert watch.wait_alert("down", device=dev)["state"] == "offline"
    # It comes back: recovered. Then dies again: alerted again.
    mark = time.monotonic()
    device = spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    hooks.wait(titled(f"{dev} recovered"))
    device.kill()
    device.wait(5)
    hooks.wait(titled(dev), count=3)
    # The neighbour, whose window was ended, is alerted normally too.
    neighbour.kill()
    neighbour.wait(5)
    hooks.wait(titled(other))
    time.sleep(QUIET_FOR)
    assert hooks.titles() == [
        f"[clawbeat] {dev} is offline",
        f"[clawbeat] {dev} recovered",
        f"[clawbeat] {dev} is offline",
        f"[clawbeat] {other} is offline",
    ]


@SQLITE_ONLY
def test_a_device_down_inside_a_window_across_a_monitor_restart_is_alerted_when_it_ends(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev = "alert-maint-restart"
    broker.add_device(dev)
    first = make_monitor(broker, database_url, tmp_path)
    add_channel(database_url, "ops", hooks.url("/ops"))
    start(first, watch, monitors)
    mark = time.monotonic()
    device = spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    first.cli("maintenance", "add", "--device", dev, "--for", "1h")
    monitor_logged(first, "maintenance #1 in effect")
    device.kill()
    device.wait(5)
    watch.wait_state(dev, "offline", after=mark)
    # Past the checkpoint's margin (will_hold + 5 s): only the window tells the next
    # monitor that this drop is still undecided.
    time.sleep(WILL_HOLD + 5 + 2 * CHECKPOINT_EVERY)
    assert first.terminate() == 0
    second = make_monitor(broker, database_url, tmp_path)
    start(second, watch, monitors)
    monitor_logged(second, "1 devices went down inside a maintenance window or mute")
    time.sleep(QUIET_FOR)
    assert hooks.posts == []
    second.cli("maintenance", "end", "1")
    (post,) = hooks.wait(titled(dev))
    assert post.title == f"[clawbeat] {dev} is offline"


# --- forgetting a device ------------------------------------------------------------------------


def retained_for(broker: TestBroker, device_id: str) -> dict[str, bytes]:
    """What the broker retains for a device (asked with the monitor's login: stop it first)."""
    probe = MqttProbe(broker.url(), client_id=broker.monitor_user)
    probe.connect()
    try:
        for topic in (f"{ROOT}/devices/{device_id}/+", f"{ROOT}/status/{device_id}"):
            probe.subscribe(topic)
        # The broker sends a subscription's retained messages before it answers the
        # next one: once the monitor's presence (always retained) arrives, the device's
        # would have.
        probe.subscribe(f"{ROOT}/monitor/presence")
        probe.wait_for(lambda m: m.topic == f"{ROOT}/monitor/presence")
        return {m.topic: m.payload for m in probe.messages if m.retain and device_id in m.topic}
    finally:
        probe.close()


@SQLITE_ONLY
def test_a_forgotten_device_stops_alerting_and_does_not_come_back_from_retained_messages(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev, other = "alert-forget-1", "alert-forget-2"
    broker.add_device(dev)
    broker.add_device(other)
    first = make_monitor(broker, database_url, tmp_path, repeat_every=1.5)
    add_channel(database_url, "ops", hooks.url("/ops"))
    start(first, watch, monitors)
    mark = time.monotonic()
    device, neighbour = spawned.device(dev), spawned.device(other)
    watch.wait_state(dev, "online", after=mark)
    watch.wait_state(other, "online", after=mark)
    device.kill()
    neighbour.kill()
    device.wait(5)
    neighbour.wait(5)
    hooks.wait(titled(f"reminder 1: {dev}"))
    hooks.wait(titled(f"reminder 1: {other}"))

    # Forgotten while the monitor runs: its alert is resolved, its reminders stop.
    out = first.cli("devices", "forget", dev).stdout
    assert f"forgot {dev} and its history; its open alert resolved" in out
    monitor_logged(first, f"forgot device {dev}: its retained topics are cleared")
    (gone,) = [a for a in stored_alerts(first) if a["device"] == dev]
    assert gone["status"] == "resolved"
    seen = len(hooks.matching(titled(dev)))
    time.sleep(1.5 + QUIET_FOR)  # past the next reminder
    assert len(hooks.matching(titled(dev))) == seen
    assert hooks.matching(titled(other))[-1].title != hooks.matching(titled(other))[0].title
    assert first.terminate() == 0
    assert retained_for(broker, dev) == {}

    # Forgotten while no monitor runs: the next one clears what the broker replays.
    assert retained_for(broker, other)  # heartbeat, presence (its will), status
    first.cli("devices", "forget", other)
    seen_other = len(hooks.matching(titled(other)))
    second = make_monitor(broker, database_url, tmp_path, repeat_every=1.5)
    start(second, watch, monitors)
    time.sleep(1.5 + QUIET_FOR)  # past warm-up (1 s), a hold and a reminder
    assert len(hooks.matching(titled(other))) == seen_other
    assert len(hooks.matching(titled(dev))) == seen
    assert second.terminate() == 0
    assert retained_for(broker, other) == {}
    devices = read_devices(database_url)
    assert dev not in devices
    assert other not in devices
    assert {a["status"] for a in stored_alerts(second)} == {"resolved"}

    # Heard alive again: an ordinary device, tracked from scratch.
    third = make_monitor(broker, database_url, tmp_path)
    start(third, watch, monitors)
    mark = time.monotonic()
    spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    wait_until(lambda: dev in read_devices(database_url), 10, what="the device stored again")


# --- repeat, escalation, acknowledgement ---------------------------------------------------


@SQLITE_ONLY
def test_repeats_and_escalation_until_acknowledged(
    broker: TestBroker,
    database_url: str,
    tmp_path: Path,
    watch: AlertWatch,
    spawned: Spawned,
    hooks: WebhookSink,
    monitors: list[MonitorProcess],
) -> None:
    dev = "alert-nag-1"
    broker.add_device(dev)
    monitor = make_monitor(broker, database_url, tmp_path, repeat_every=3, escalate_after=4)
    add_channel(database_url, "primary", hooks.url("/primary"))
    add_channel(database_url, "boss", hooks.url("/boss"))
    monitor.cli("rules", "add", "main", "--channel", "primary", "--escalate-to", "boss")
    assert "main" in monitor.cli("rules", "list").stdout
    start(monitor, watch, monitors)
    mark = time.monotonic()
    device = spawned.device(dev)
    watch.wait_state(dev, "online", after=mark)
    device.kill()
    device.wait(5)

    def on(path: str) -> Any:
        return lambda h: h.path == path

    (opened,) = hooks.wait(on("/primary"))
    assert opened.title == f"[clawbeat] {dev} is offline"
    hooks.wait(on("/primary"), count=3)  # the opening and two reminders
    hooks.wait(on("/boss"), count=2)  # the escalation and a reminder after it
    reminders = [f"[clawbeat] reminder {n}: {dev} is offline" for n in (1, 2)]
    assert set(reminders) <= set(hooks.titles("/primary"))
    boss = hooks.titles("/boss")
    assert boss[0] == f"[clawbeat] ESCALATED: {dev} is offline"
    assert "[clawbeat] reminder" in boss[1]

    # When each follow-up was decided, by the database's clock: never before its time
    # (how late is a matter of load, not of correctness).
    (alert,) = [a for a in stored_alerts(monitor) if a["status"] == "open"]
    rows = delivery_rows(database_url, alert["id"])
    opened_at = rows[0].created_at
    decided = {(r.event, r.title): r.created_at for r in rows}
    first = decided[("repeat", reminders[0])]
    second = decided[("repeat", reminders[1])]
    escalated = decided[("escalated", boss[0])]
    assert first - opened_at >= timedelta(seconds=3)
    assert second - first >= timedelta(seconds=3)
    assert escalated - opened_at >= timedelta(seconds=4)
    # Once escalated, every reminder goes to the boss too.
    for r in rows:
        if r.event == "repeat" and r.created_at >= escalated:
            assert ("boss", r.title) in {(x.channel, x.title) for x in rows}

    acked = monitor.cli("alerts", "ack", str(alert["id"]), "--by", "alice")
    assert "acknowledged by alice" in acked.stdout
    # A reminder decided just before the acknowledgement may still be on its way.
    wait_until(
        lambda: all(r.state == "sent" for r in delivery_rows(database_url, alert["id"])),
        20,
        what="deliveries sent",
    )
    count = len(hooks.posts)
    time.sleep(3 + QUIET_FOR)  # past the next reminder (repeat_every after the last)
    assert len(hooks.posts) == count
    (acked_row,) = [a for a in stored_alerts(monitor) if a["id"] == alert["id"]]
    acked_at = datetime.fromisoformat(acked_row["acknowledged_at"])
    assert all(r.created_at <= acked_at for r in delivery_rows(database_url, alert["id"]))
    again = monitor.cli("alerts", "ack", str(alert["id"]), check=False)
    assert again.returncode == 2
    assert "already acknowledged by alice" in again.stderr

    # Recovery still goes to everyone the alert reached.
    spawned.device(dev)
    hooks.wait(lambda h: "recovered" in h.title, count=2)
    recovered = {h.path for h in hooks.posts if "recovered" in h.title}
    assert recovered == {"/primary", "/boss"}
    listed = monitor.cli("alerts", "list", "--all").stdout
    assert "alice" in listed
    assert "escalated" in listed
