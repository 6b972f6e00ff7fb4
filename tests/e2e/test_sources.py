"""End to end: fleets in other conventions, through a real Mosquitto, on one monitor.

Devices are MQTT connections publishing each convention's documented payloads (with
their wills); the monitor runs with a sources file; what the tests look at is what ops
see: the retained status topics, the ``transitions`` table and the monitor's log.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from device_client import Device
from monitor.sources.sparkplug_b_pb2 import Payload
from tests.harness.monitor import (
    MonitorProcess,
    StatusWatch,
    read_devices,
    read_transitions,
    wait_until,
)
from tests.harness.mosquitto import TestBroker
from tests.raw_mqtt import DeviceConnection
from tests.sparkplug_payloads import data, dbirth, nbirth, ndeath

WILL_HOLD = 0.5
INTERVAL = 2.0  # every source's expected interval: late after 3 s of silence, stale after 5
FAST = {
    "grace": 1,
    "missed_limit": 2,
    "warmup": 1,
    "will_hold": WILL_HOLD,
    "default_interval": INTERVAL,
    "flush_interval": 0.2,
    "summary_interval": 1,
}
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SOURCES_TOML = f"""
[[source]]
name = "plugs"
kind = "tasmota"
interval = {INTERVAL}

[[source]]
name = "esp"
kind = "esphome"
interval = {INTERVAL}

[[source]]
name = "shelly"
kind = "shelly"
root = "shellies"
interval = {INTERVAL}

[[source]]
name = "zigbee"
kind = "zigbee2mqtt"
interval = {INTERVAL}

[[source]]
name = "plant"
kind = "sparkplug"
interval = {INTERVAL}

[[source]]
name = "pumps"
kind = "generic"
topic = "home/+/alive"
id_segment = 1
seq = "n"
presence_topic = "home/+/conn"
interval = {INTERVAL}
"""

# The topics the monitor reads beyond protocol v1 (operators add the same to their ACL).
MONITOR_READS = [
    "tele/#",
    "+/status",
    "+/sensor/+/state",
    "+/binary_sensor/+/state",
    "+/text_sensor/+/state",
    "+/switch/+/state",
    "+/light/+/state",
    "+/fan/+/state",
    "shellies/#",
    "zigbee2mqtt/#",
    "spBv1.0/#",
    "home/#",
]


@pytest.fixture
def monitor(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> Iterator[MonitorProcess]:
    sources = tmp_path / "sources.toml"
    sources.write_text(SOURCES_TOML)
    broker.allow(broker.monitor_user, read=MONITOR_READS)
    proc = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", sources_file=sources, **FAST
    )
    proc.start(probe=watch)
    yield proc
    proc.stop()


def _steps(database_url: str, device_id: str) -> list[tuple[str | None, str, str | None]]:
    return [(t.old_state, t.new_state, t.reason) for t in read_transitions(database_url, device_id)]


def _wait_steps(
    database_url: str, device_id: str, want: list[tuple[str | None, str, str | None]]
) -> None:
    try:
        wait_until(lambda: _steps(database_url, device_id) == want, 10, what=f"{want}")
    except AssertionError as exc:
        raise AssertionError(f"{device_id}: {_steps(database_url, device_id)} != {want}") from exc


@dataclass(frozen=True)
class Convention:
    """How one device of a convention is born, dies and beats, in its documented format."""

    source: str
    user: str
    device_id: str
    birth: tuple[str, str]
    will: tuple[str, str]
    beat: Callable[[int], tuple[str, str]]
    garbage: list[tuple[str, str]]


_NOTIFY = {
    "src": "shellyplus1pm-a8032ab12345",
    "dst": "shellies/shellyplus1pm-a8032ab12345/events",
    "method": "NotifyStatus",
    "params": {"ts": 1_800_000_000.5, "switch:0": {"id": 0, "apower": 12.5}},
}

CONVENTIONS = [
    Convention(
        "plugs",
        "plug-1",
        "plug-1",
        ("tele/plug-1/LWT", "Online"),
        ("tele/plug-1/LWT", "Offline"),
        lambda n: (
            "tele/plug-1/STATE",
            json.dumps({"Time": "2026-12-03T15:10:00", "UptimeSec": n, "POWER": "ON"}),
        ),
        [("tele/plug-1/LWT", "Maybe"), ("tele/plug-1/STATE", "{trunc")],
    ),
    Convention(
        "esp",
        "kitchen",
        "kitchen",
        ("kitchen/status", "online"),
        ("kitchen/status", "offline"),
        lambda n: ("kitchen/sensor/temperature/state", f"{20 + n / 10:.1f}"),
        [("kitchen/status", "napping")],
    ),
    Convention(
        "shelly",
        "shellyplus1pm-a8032ab12345",
        "shellyplus1pm-a8032ab12345",
        ("shellies/shellyplus1pm-a8032ab12345/online", "true"),
        ("shellies/shellyplus1pm-a8032ab12345/online", "false"),
        lambda _n: ("shellies/shellyplus1pm-a8032ab12345/events/rpc", json.dumps(_NOTIFY)),
        [
            ("shellies/shellyplus1pm-a8032ab12345/online", "yes"),
            ("shellies/shellyplus1pm-a8032ab12345/events/rpc", "[]"),
        ],
    ),
    Convention(
        "pumps",
        "pump-9",
        "pump-9",
        ("home/pump-9/conn", "online"),
        ("home/pump-9/conn", "offline"),
        lambda n: ("home/pump-9/alive", json.dumps({"n": n})),
        [("home/pump-9/alive", '{"n": "seven"}'), ("home/pump-9/conn", "?")],
    ),
]


@SQLITE_ONLY
@pytest.mark.parametrize("conv", CONVENTIONS, ids=[c.source for c in CONVENTIONS])
def test_every_transition_and_a_quick_reconnect(
    broker: TestBroker,
    database_url: str,
    monitor: MonitorProcess,
    watch: StatusWatch,
    conv: Convention,
) -> None:
    broker.allow(conv.user, write=[conv.birth[0], conv.will[0], conv.beat(0)[0]])
    will = (conv.will[0], conv.will[1], True)
    seq = iter(range(1, 1000))
    first = DeviceConnection(broker, conv.user, will=will)
    first.publish(*conv.birth, retain=True)
    first.publish(*conv.beat(next(seq)))
    watch.wait_state(conv.device_id, "online")
    # Silence: late after interval + grace, stale after interval x missed_limit + grace.
    watch.wait_state(conv.device_id, "late", timeout=3 * INTERVAL + 10)
    watch.wait_state(conv.device_id, "stale", timeout=3 * INTERVAL + 10)
    first.publish(*conv.beat(next(seq)))
    watch.wait_state(conv.device_id, "online", reason="heartbeat")

    # Quick reconnect: the new connection takes the client id over, so the broker
    # publishes the old one's will just before the new birth.
    second = DeviceConnection(broker, conv.user, will=will)
    second.publish(*conv.birth, retain=True)
    second.publish(*conv.beat(next(seq)))
    for topic, payload in conv.garbage:
        second.publish(topic, payload)
    time.sleep(3 * WILL_HOLD)  # a false offline from the old will would have fired by now
    second.publish(*conv.beat(next(seq)))
    latest = watch.latest(conv.device_id)
    assert latest is not None
    assert latest["state"] == "online", watch.statuses(conv.device_id)

    mark = time.monotonic()
    second.drop()  # a crash: the broker publishes the will
    watch.wait_state(conv.device_id, "offline", reason="connection-lost", after=mark)
    _wait_steps(
        database_url,
        conv.device_id,
        [
            (None, "online", "first-seen"),
            ("online", "late", "missed-heartbeats"),
            ("late", "stale", "stopped-beating"),
            ("stale", "online", "heartbeat"),
            ("online", "offline", "connection-lost"),
        ],
    )
    log = monitor.log_path.read_text(errors="replace")
    assert f"source {conv.source}: dropped message" in log
    assert monitor.running()


@SQLITE_ONLY
def test_zigbee2mqtt_availability_messages_and_bridge_will(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    broker.allow("zigbee2mqtt", write=["zigbee2mqtt/#"])
    bridge = DeviceConnection(
        broker, "zigbee2mqtt", will=("zigbee2mqtt/bridge/state", '{"state":"offline"}', True)
    )
    bridge.publish("zigbee2mqtt/bridge/state", '{"state":"online"}', retain=True)
    bridge.publish("zigbee2mqtt/Hall Lamp/availability", '{"state":"online"}', retain=True)
    bridge.publish("zigbee2mqtt/Hall Lamp", '{"state":"ON","brightness":200,"linkquality":90}')
    watch.wait_state("Hall_Lamp", "online")
    watch.wait_state("zigbee2mqtt.bridge", "online")
    bridge.publish("zigbee2mqtt/Hall Lamp/set", '{"state":"OFF"}')  # a command: not the lamp
    bridge.publish("zigbee2mqtt/Hall Lamp", "ON")  # not JSON: malformed
    watch.wait_state("Hall_Lamp", "late", timeout=3 * INTERVAL + 10)
    watch.wait_state("Hall_Lamp", "stale", timeout=3 * INTERVAL + 10)
    bridge.publish("zigbee2mqtt/Hall Lamp", '{"state":"ON","linkquality":87}')
    watch.wait_state("Hall_Lamp", "online", reason="heartbeat")
    bridge.publish("zigbee2mqtt/Hall Lamp/availability", '{"state":"offline"}', retain=True)
    watch.wait_state("Hall_Lamp", "offline", reason="connection-lost")
    bridge.drop()
    watch.wait_state("zigbee2mqtt.bridge", "offline", reason="connection-lost")
    assert "source zigbee: dropped message" in monitor.log_path.read_text(errors="replace")
    _wait_steps(
        database_url,
        "Hall_Lamp",
        [
            (None, "online", "first-seen"),
            ("online", "late", "missed-heartbeats"),
            ("late", "stale", "stopped-beating"),
            ("stale", "online", "heartbeat"),
            ("online", "offline", "connection-lost"),
        ],
    )


def _ms() -> int:
    return round(time.time() * 1000)


NODE, PUMP, VALVE = "plant.edge-1", "plant.edge-1.pump", "plant.edge-1.valve"


def _sparkplug_birth(conn: DeviceConnection, bd: int) -> None:
    conn.publish("spBv1.0/plant/NBIRTH/edge-1", nbirth(bd, ts_ms=_ms()))
    conn.publish("spBv1.0/plant/DBIRTH/edge-1/pump", dbirth(1, ts_ms=_ms()))
    conn.publish("spBv1.0/plant/DBIRTH/edge-1/valve", dbirth(2, ts_ms=_ms()))


def _sparkplug_node(broker: TestBroker, bd: int) -> DeviceConnection:
    will = ("spBv1.0/plant/NDEATH/edge-1", ndeath(bd, ts_ms=_ms()), False)
    return DeviceConnection(broker, "edge-1", will=will)


@SQLITE_ONLY
def test_sparkplug_sessions_duplicates_and_node_death(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    broker.allow("edge-1", write=["spBv1.0/plant/+/edge-1", "spBv1.0/plant/+/edge-1/+"])
    first = _sparkplug_node(broker, 0)
    _sparkplug_birth(first, 0)
    for device in (NODE, PUMP, VALVE):
        watch.wait_state(device, "online")

    first.publish("spBv1.0/plant/DDATA/edge-1/pump", data(3, ts_ms=_ms()))
    row = wait_until(
        lambda: (r := read_devices(database_url).get(PUMP)) and r.last_seq is not None and r,
        5,
        what="the pump's DDATA in the database",
    )
    first.publish("spBv1.0/plant/DDATA/edge-1/pump", data(3, ts_ms=_ms()))  # redelivered
    first.publish("spBv1.0/plant/NDATA/edge-1", b"\x08\xff\xff")  # truncated protobuf
    first.publish("spBv1.0/plant/NDATA/edge-1", data(4, ts_ms=_ms()))  # sentinel
    wait_until(
        lambda: (
            (r := read_devices(database_url).get(NODE))
            and r.last_seq is not None
            and r.last_seq % 1_000_000 >= 4
        ),
        5,
        what="the node's sentinel NDATA in the database",
    )
    assert read_devices(database_url)[PUMP] == row  # the duplicate changed nothing

    # Quick reconnect with the next bdSeq: the old connection's NDEATH (bdSeq 0) comes
    # first, the new births within the will hold.
    second = _sparkplug_node(broker, 1)
    _sparkplug_birth(second, 1)
    # The same old will delivered once more, late (after the new birth): stale, ignored.
    second.publish("spBv1.0/plant/NDEATH/edge-1", ndeath(0, ts_ms=_ms()))
    time.sleep(3 * WILL_HOLD)
    second.publish("spBv1.0/plant/DDATA/edge-1/valve", data(3, ts_ms=_ms()))
    for device in (NODE, PUMP, VALVE):
        latest = watch.latest(device)
        assert latest is not None
        assert latest["state"] == "online", watch.statuses(device)
        assert [s for _, s, _ in _steps(database_url, device)] == ["online"], device

    mark = time.monotonic()
    second.drop()  # node death: its devices die with it
    for device in (NODE, PUMP, VALVE):
        watch.wait_state(device, "offline", reason="connection-lost", after=mark)
    assert "not a Sparkplug B payload" in monitor.log_path.read_text(errors="replace")


def test_one_monitor_watches_a_mixed_fleet(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    """Protocol v1, Sparkplug B, Tasmota and Zigbee2MQTT devices side by side."""
    broker.add_device("v1-pump")
    broker.allow("edge-1", write=["spBv1.0/plant/+/edge-1", "spBv1.0/plant/+/edge-1/+"])
    broker.allow("plug-1", write=["tele/plug-1/#"])
    broker.allow("zigbee2mqtt", write=["zigbee2mqtt/#"])
    with Device(device_id="v1-pump", broker=broker.url("v1-pump"), interval=0.5, keepalive=5):
        node = _sparkplug_node(broker, 0)
        _sparkplug_birth(node, 0)
        plug = DeviceConnection(broker, "plug-1", will=("tele/plug-1/LWT", "Offline", True))
        plug.publish("tele/plug-1/LWT", "Online", retain=True)
        plug.publish("tele/plug-1/STATE", '{"UptimeSec": 5, "POWER": "ON"}')
        bridge = DeviceConnection(
            broker, "zigbee2mqtt", will=("zigbee2mqtt/bridge/state", "offline", True)
        )
        bridge.publish("zigbee2mqtt/bridge/state", "online", retain=True)
        bridge.publish("zigbee2mqtt/Hall Lamp/availability", '{"state":"online"}', retain=True)
        bridge.publish("zigbee2mqtt/Hall Lamp", '{"state":"ON"}')
        fleet = ["v1-pump", NODE, PUMP, VALVE, "plug-1", "zigbee2mqtt.bridge", "Hall_Lamp"]
        for device in fleet:
            watch.wait_state(device, "online")

        mark = time.monotonic()
        node.drop()
        for device in (NODE, PUMP, VALVE):
            watch.wait_state(device, "offline", reason="connection-lost", after=mark)
        plug.drop()
        watch.wait_state("plug-1", "offline", reason="connection-lost", after=mark)
        bridge.publish("zigbee2mqtt/Hall Lamp/availability", '{"state":"offline"}', retain=True)
        watch.wait_state("Hall_Lamp", "offline", reason="connection-lost", after=mark)
        bridge.drop()
        watch.wait_state("zigbee2mqtt.bridge", "offline", reason="connection-lost", after=mark)
        latest = watch.latest("v1-pump")
        assert latest is not None
        assert latest["state"] == "online"  # beating throughout, untouched by the others
    watch.wait_state("v1-pump", "offline", reason="shutdown", after=mark)

    wait_until(lambda: set(fleet) <= set(read_devices(database_url)), 5, what="every row")
    assert set(read_devices(database_url)) == set(fleet)

    def ends_offline(device: str) -> bool:
        steps = _steps(database_url, device)
        return bool(steps) and steps[-1][1] == "offline"

    for device in fleet:
        wait_until(functools.partial(ends_offline, device), 5, what=f"{device}'s offline row")
        assert _steps(database_url, device)[0] == (None, "online", "first-seen")
    assert [s for _, s, _ in _steps(database_url, "v1-pump")] == ["online", "offline"]


@SQLITE_ONLY
def test_sparkplug_primary_host_state_follows_the_monitor(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    topic = "spBv1.0/STATE/clawbeat"
    broker.allow("clawbeat-host", write=[topic], read=[topic])
    broker.allow(broker.ops_user, read=["spBv1.0/STATE/#"])
    broker.allow(broker.monitor_user, read=["spBv1.0/#"])
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nname = "plant"\nkind = "sparkplug"\nprimary_host_id = "clawbeat"\n'
    )
    proc = MonitorProcess(
        broker,
        database_url,
        tmp_path / "monitor.log",
        sources_file=sources,
        sparkplug_host_url=broker.url("clawbeat-host"),
        **FAST,
    )
    watch.subscribe(topic)

    def state_after(mark: float, *, online: bool) -> dict[str, object]:
        found = watch.wait_for(
            lambda m: (
                m.topic == topic and m.at >= mark and json.loads(m.payload)["online"] is online
            ),
            15,
        )
        body: dict[str, object] = json.loads(found[-1].payload)
        return body

    try:
        mark = time.monotonic()
        proc.start(probe=watch)
        birth = state_after(mark, online=True)
        mark = time.monotonic()
        proc.kill()  # SIGKILL: only the broker can say it, through the host's will
        death = state_after(mark, online=False)
        assert death["timestamp"] == birth["timestamp"]  # the will names its birth

        mark = time.monotonic()
        proc.start(probe=watch)
        second = state_after(mark, online=True)
        assert isinstance(second["timestamp"], int)
        assert isinstance(birth["timestamp"], int)
        assert second["timestamp"] > birth["timestamp"]
        mark = time.monotonic()
        assert proc.terminate() == 0
        clean = state_after(mark, online=False)
        assert clean["timestamp"] == second["timestamp"]
        mark = time.monotonic()
        watch.subscribe(topic)  # what an edge node connecting now is told
        replay = watch.wait_for(lambda m: m.topic == topic and m.at >= mark and m.retain, 5)
        assert json.loads(replay[-1].payload) == clean
    finally:
        proc.stop()


@SQLITE_ONLY
def test_a_source_stored_with_the_cli_is_watched_at_start(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    broker.allow(broker.monitor_user, read=["tele/#"])
    broker.allow("plug-7", write=["tele/plug-7/#"])
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    out = proc.cli("sources", "set", "plugs", "tasmota", f"interval={INTERVAL}", "prefix=tele")
    assert "a running monitor applies it within a second" in out.stdout
    bad = proc.cli("sources", "set", "plugs", "tasmota", "colour=red", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "clawbeat sources: error: source 'plugs': unknown key 'colour' for kind 'tasmota'"
    ]
    listed = json.loads(proc.cli("sources", "list", "--json").stdout)
    assert listed == [
        {"name": "plugs", "kind": "tasmota", "options": {"interval": INTERVAL, "prefix": "tele"}}
    ]
    try:
        proc.start(probe=watch)
        plug = DeviceConnection(broker, "plug-7", will=("tele/plug-7/LWT", "Offline", True))
        plug.publish("tele/plug-7/LWT", "Online", retain=True)
        plug.publish("tele/plug-7/STATE", '{"UptimeSec": 1}')
        watch.wait_state("plug-7", "online")
        plug.drop()
        watch.wait_state("plug-7", "offline", reason="connection-lost")
    finally:
        proc.stop()
    proc.cli("sources", "remove", "plugs")
    assert json.loads(proc.cli("sources", "list", "--json").stdout) == []
    gone = proc.cli("sources", "remove", "plugs", check=False)
    assert gone.returncode == 2
    assert "no stored source 'plugs'" in gone.stderr


def _beat_until(
    watch: StatusWatch, device_id: str, state: str, beats: list[tuple[DeviceConnection, str]]
) -> None:
    """Keep the plugs beating (Tasmota STATE) until ``device_id``'s status is ``state``."""
    deadline = time.monotonic() + 15
    n = 0
    while (watch.latest(device_id) or {}).get("state") != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"{device_id} never {state}: {watch.statuses(device_id)}")
        n += 1
        for conn, topic in beats:
            conn.publish(topic, json.dumps({"UptimeSec": n}))
        time.sleep(INTERVAL / 4)


def _cli_beating(
    proc: MonitorProcess, beats: list[tuple[DeviceConnection, str]], *args: str
) -> None:
    """Run a CLI command while the plugs keep beating: on a loaded machine the command
    can outlast a plug's grace and stale delay, and a plug left silent that long would
    pass ``late`` before the test looks."""
    with ThreadPoolExecutor(1) as pool:
        command = pool.submit(proc.cli, *args)
        n = 0
        while not command.done():
            n += 1
            for conn, topic in beats:
                conn.publish(topic, json.dumps({"UptimeSec": n}))
            time.sleep(INTERVAL / 4)
        command.result()


@SQLITE_ONLY
def test_a_source_stored_while_the_monitor_runs_applies_at_once(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    """Added, changed and removed through the CLI: the running monitor (un)subscribes."""
    broker.allow(broker.monitor_user, read=["tele/#", "tasmota/#"])
    broker.allow("plug-7", write=["tele/plug-7/#"])
    broker.allow("plug-8", write=["tasmota/plug-8/#"])
    proc = MonitorProcess(broker, database_url, tmp_path / "monitor.log", **FAST)
    try:
        proc.start(probe=watch)
        old = DeviceConnection(broker, "plug-7", will=("tele/plug-7/LWT", "Offline", True))
        old.publish("tele/plug-7/LWT", "Online", retain=True)
        new = DeviceConnection(broker, "plug-8", will=("tasmota/plug-8/LWT", "Offline", True))
        new.publish("tasmota/plug-8/LWT", "Online", retain=True)
        beats = [(old, "tele/plug-7/STATE"), (new, "tasmota/plug-8/STATE")]
        # Added: subscribed at once; plug-7's retained birth is replayed, its beats heard.
        proc.cli("sources", "set", "plugs", "tasmota", f"interval={INTERVAL}", "prefix=tele")
        _beat_until(watch, "plug-7", "online", beats)
        assert watch.latest("plug-8") is None
        # Changed: plug-8's prefix taken, plug-7's dropped. plug-7 beats on, unheard.
        _cli_beating(
            proc,
            beats,
            "sources",
            "set",
            "plugs",
            "tasmota",
            f"interval={INTERVAL}",
            "prefix=tasmota",
        )
        _beat_until(watch, "plug-8", "online", beats)
        _beat_until(watch, "plug-7", "late", beats)
        assert watch.latest("plug-8")["state"] == "online"  # type: ignore[index]
        # Removed: plug-8 beats on, unheard; nor is its death: it goes stale, not offline.
        _cli_beating(proc, beats[1:], "sources", "remove", "plugs")
        _beat_until(watch, "plug-8", "late", beats[1:])
        new.drop()
        watch.wait_state("plug-8", "stale")
        assert "offline" not in [s["state"] for s in watch.statuses("plug-8")]
        log = (tmp_path / "monitor.log").read_text()
        assert "unsubscribed from tasmota/+/LWT, tasmota/+/SENSOR, tasmota/+/STATE" in log
    finally:
        proc.stop()


@SQLITE_ONLY
def test_restart_warmup_judges_a_sessionless_death_once_and_spares_the_living(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    """A Tasmota plug dies while the monitor is down: offline once, after warm-up."""
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[source]]\nname = "plugs"\nkind = "tasmota"\ninterval = {INTERVAL}\n')
    broker.allow(broker.monitor_user, read=["tele/#"])
    for user in ("plug-dies", "plug-lives"):
        broker.allow(user, write=[f"tele/{user}/#"])
    settings = {**FAST, "warmup": 3}
    proc = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", sources_file=sources, **settings
    )
    plugs: dict[str, DeviceConnection] = {}
    try:
        proc.start(probe=watch)
        for user in ("plug-dies", "plug-lives"):
            plugs[user] = DeviceConnection(broker, user, will=(f"tele/{user}/LWT", "Offline", True))
            plugs[user].publish(f"tele/{user}/LWT", "Online", retain=True)
            plugs[user].publish(f"tele/{user}/STATE", '{"UptimeSec": 1}')
            watch.wait_state(user, "online")
        wait_until(
            lambda: {"plug-dies", "plug-lives"} <= set(read_devices(database_url)), 5, what="rows"
        )
        proc.kill()
        plugs["plug-dies"].drop()  # its retained LWT is now Offline; nobody listens

        mark = time.monotonic()
        proc.start(probe=watch)
        started = time.monotonic()

        def judged() -> bool:
            return any(
                json.loads(m.payload)["state"] == "offline"
                for m in watch.matching(
                    lambda m: m.topic == "clawbeat/v1/status/plug-dies" and m.at >= mark
                )
            )

        # The living plug beats on (faster than its interval) until the verdict is in.
        uptime = 9
        while not judged():
            assert time.monotonic() - started < 30, watch.statuses("plug-dies")
            plugs["plug-lives"].publish("tele/plug-lives/STATE", json.dumps({"UptimeSec": uptime}))
            uptime += 1
            time.sleep(INTERVAL / 4)  # the device's own rhythm
        # Not before warm-up ended: the replayed will waited for it.
        assert time.monotonic() - started >= settings["warmup"] - 0.5
        status = watch.wait_state("plug-dies", "offline", reason="connection-lost", after=mark)
        assert status["session"]  # the session the first run gave it, ended by the will
        latest = watch.latest("plug-lives")
        assert latest is not None
        assert latest["state"] == "online"
        assert [s for _, s, _ in _steps(database_url, "plug-lives")] == ["online"]
        wait_until(lambda: len(_steps(database_url, "plug-dies")) == 2, 5, what="the offline row")
        assert _steps(database_url, "plug-dies") == [
            (None, "online", "first-seen"),
            ("online", "offline", "connection-lost"),
        ]
    finally:
        proc.stop()


@SQLITE_ONLY
def test_sparkplug_node_without_a_birth_is_asked_to_rebirth(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    """As after a monitor restart: DATA from a node whose births this run never saw."""
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[source]]\nname = "plant"\nkind = "sparkplug"\ninterval = {INTERVAL}\n'
        "request_rebirth = true\n"
    )
    broker.allow(broker.monitor_user, read=["spBv1.0/#"], write=["spBv1.0/+/NCMD/+"])
    broker.allow(
        "edge-1",
        write=["spBv1.0/plant/+/edge-1", "spBv1.0/plant/+/edge-1/+"],
        read=["spBv1.0/plant/NCMD/edge-1"],
    )
    proc = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", sources_file=sources, **FAST
    )
    try:
        proc.start(probe=watch)
        node = _sparkplug_node(broker, 5)
        node.subscribe("spBv1.0/plant/NCMD/edge-1")
        node.publish("spBv1.0/plant/DDATA/edge-1/pump", data(17, ts_ms=_ms()))
        request = Payload.FromString(bytes(node.wait_message("spBv1.0/plant/NCMD/edge-1").payload))
        assert [(m.name, m.boolean_value) for m in request.metrics] == [
            ("Node Control/Rebirth", True)
        ]
        _sparkplug_birth(node, 5)  # what an edge node does when asked
        for device in (NODE, PUMP, VALVE):  # the valve is known from its birth alone
            watch.wait_state(device, "online")
        mark = time.monotonic()
        node.drop()
        for device in (NODE, PUMP, VALVE):
            watch.wait_state(device, "offline", reason="connection-lost", after=mark)
    finally:
        proc.stop()


@SQLITE_ONLY
def test_sparkplug_every_transition(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    broker.allow("edge-1", write=["spBv1.0/plant/+/edge-1", "spBv1.0/plant/+/edge-1/+"])
    node = _sparkplug_node(broker, 2)
    node.publish("spBv1.0/plant/NBIRTH/edge-1", nbirth(2, ts_ms=_ms()))
    node.publish("spBv1.0/plant/DBIRTH/edge-1/pump", dbirth(1, ts_ms=_ms()))
    watch.wait_state(NODE, "online")
    watch.wait_state(NODE, "late", timeout=3 * INTERVAL + 10)
    watch.wait_state(NODE, "stale", timeout=3 * INTERVAL + 10)
    node.publish("spBv1.0/plant/NDATA/edge-1", data(2, ts_ms=_ms()))
    node.publish("spBv1.0/plant/DDATA/edge-1/pump", data(3, ts_ms=_ms()))
    watch.wait_state(NODE, "online", reason="heartbeat")
    watch.wait_state(PUMP, "online", reason="heartbeat")
    node.publish("spBv1.0/plant/DDEATH/edge-1/pump", b"\x18\x04")  # seq 4, no metrics
    watch.wait_state(PUMP, "offline", reason="connection-lost")
    mark = time.monotonic()
    node.drop()
    watch.wait_state(NODE, "offline", reason="connection-lost", after=mark)
    _wait_steps(
        database_url,
        NODE,
        [
            (None, "online", "first-seen"),
            ("online", "late", "missed-heartbeats"),
            ("late", "stale", "stopped-beating"),
            ("stale", "online", "heartbeat"),
            ("online", "offline", "connection-lost"),
        ],
    )


@SQLITE_ONLY
def test_generic_rule_duplicates_change_nothing(
    broker: TestBroker, database_url: str, monitor: MonitorProcess, watch: StatusWatch
) -> None:
    for user in ("pump-5", "pump-6"):
        broker.allow(user, write=[f"home/{user}/alive"])
    pump = DeviceConnection(broker, "pump-5")
    pump.publish("home/pump-5/alive", '{"n": 5}')
    row = wait_until(
        lambda: (r := read_devices(database_url).get("pump-5")) and r.last_seq == 5 and r,
        5,
        what="pump-5 at seq 5 in the database",
    )
    pump.publish("home/pump-5/alive", '{"n": 5}')  # redelivered
    pump.publish("home/pump-5/alive", '{"n": "5"}')  # malformed: dropped
    # A sentinel after them: its row and any change to pump-5 go out in the same flush.
    sentinel = DeviceConnection(broker, "pump-6")
    sentinel.publish("home/pump-6/alive", '{"n": 1}')
    wait_until(lambda: "pump-6" in read_devices(database_url), 5, what="the sentinel's row")
    assert read_devices(database_url)["pump-5"] == row
    pump.publish("home/pump-5/alive", '{"n": 6}')
    wait_until(lambda: read_devices(database_url)["pump-5"].last_seq == 6, 5, what="seq 6 accepted")


@SQLITE_ONLY
def test_sources_acl_lets_the_monitor_read_its_sources(
    broker: TestBroker, database_url: str, tmp_path: Path, watch: StatusWatch
) -> None:
    """`clawbeat sources acl` is all the monitor's user needs on top of the protocol's ACL."""
    sources = tmp_path / "sources.toml"
    sources.write_text(SOURCES_TOML)
    proc = MonitorProcess(
        broker, database_url, tmp_path / "monitor.log", sources_file=sources, **FAST
    )
    proc.cli("sources", "set", "extra", "generic", "topic=farm/+/beat", "id_segment=1")
    acl = proc.cli("sources", "acl", "--monitor-user", broker.monitor_user).stdout
    assert "topic read farm/+/beat" in acl  # stored sources too
    assert "topic read spBv1.0/+/#" in acl
    with broker.process.acl_path.open("a") as f:
        f.write("\n" + acl)
    broker.allow("plug-1", write=["tele/plug-1/#"])  # the devices' side is the operator's
    broker.allow("cow-3", write=["farm/cow-3/beat"])
    try:
        proc.start(probe=watch)
        plug = DeviceConnection(broker, "plug-1", will=("tele/plug-1/LWT", "Offline", True))
        plug.publish("tele/plug-1/LWT", "Online", retain=True)
        watch.wait_state("plug-1", "online")
        DeviceConnection(broker, "cow-3").publish("farm/cow-3/beat", "moo")
        watch.wait_state("cow-3", "online")
    finally:
        proc.stop()
