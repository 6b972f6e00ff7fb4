"""Tasmota, ESPHome, Zigbee2MQTT, Shelly and the generic rule, step by step.

Each test feeds messages in the convention's documented format through source ingest
into a real liveness engine and checks the device's state after every step.
"""

from __future__ import annotations

import json

from monitor.liveness.states import Reason, State
from monitor.sources.esphome import ESPHomeAdapter
from monitor.sources.events import Beat
from monitor.sources.generic import GenericAdapter
from monitor.sources.shelly import ShellyAdapter
from monitor.sources.tasmota import TasmotaAdapter
from monitor.sources.zigbee2mqtt import Zigbee2MqttAdapter
from tests.sources_rig import Rig

TASMOTA_STATE = json.dumps(
    {
        "Time": "2026-12-03T15:10:00",
        "Uptime": "0T01:02:03",
        "UptimeSec": 3723,
        "Heap": 25,
        "LoadAvg": 19,
        "POWER": "ON",
        "Wifi": {"AP": 1, "SSId": "home", "RSSI": 76, "Signal": -62},
    }
)
TASMOTA_SENSOR = json.dumps(
    {"Time": "2026-12-03T15:10:00", "AM2301": {"Temperature": 21.4, "Humidity": 40.1}}
)


def test_tasmota_lwt_and_teleperiod() -> None:
    rig = Rig([TasmotaAdapter("tas", interval=10)])
    rig.feed(0, "tele/plug-1/LWT", "Online", retained=True)
    assert rig.state("plug-1") is State.UNKNOWN  # a retained birth is a claim
    rig.feed(1, "tele/plug-1/STATE", TASMOTA_STATE)
    assert rig.state("plug-1") is State.ONLINE
    rig.feed(5, "tele/plug-1/SENSOR", TASMOTA_SENSOR)
    rig.tick(5 + 10 + 10 - 0.01)  # interval + grace after the last beat
    assert rig.state("plug-1") is State.ONLINE
    rig.tick(5 + 10 + 10)
    assert rig.state("plug-1") is State.LATE
    rig.feed(26, "tele/plug-1/STATE", TASMOTA_STATE)
    assert rig.state("plug-1") is State.ONLINE
    rig.feed(27, "tele/plug-1/LWT", "Offline")  # the will
    rig.tick(27 + 1.9)
    assert rig.state("plug-1") is State.ONLINE  # held for a quick reconnect
    rig.tick(27 + 2)
    assert rig.state("plug-1") is State.OFFLINE
    assert rig.transitions[-1].reason is Reason.CONNECTION_LOST
    rig.feed(40, "tele/plug-1/LWT", "Online")
    assert rig.state("plug-1") is State.ONLINE


def test_tasmota_quick_reconnect_is_no_offline() -> None:
    rig = Rig([TasmotaAdapter("tas", interval=10)])
    rig.feed(0, "tele/plug-1/LWT", "Online")
    rig.feed(1, "tele/plug-1/STATE", TASMOTA_STATE)
    # The broker publishes the old connection's will as the new one takes over.
    rig.feed(3, "tele/plug-1/LWT", "Offline")
    rig.feed(3.5, "tele/plug-1/LWT", "Online")
    rig.tick(10)
    assert rig.state("plug-1") is State.ONLINE
    assert [t.new for t in rig.transitions] == [State.ONLINE]
    assert rig.counts("tas")["presence_reconnected"] == 1


def test_tasmota_malformed_is_counted_and_dropped() -> None:
    rig = Rig([TasmotaAdapter("tas")])
    rig.feed(0, "tele/plug-1/STATE", TASMOTA_STATE)
    rig.feed(1, "tele/plug-1/LWT", "Maybe")
    rig.feed(2, "tele/plug-1/STATE", "{not json")
    rig.feed(3, "tele/plug-1/SENSOR", "[1, 2]")
    rig.feed(4, "tele/pl ug/STATE", TASMOTA_STATE)
    rig.feed(5, "tele/" + "x" * 80 + "/STATE", TASMOTA_STATE)
    counts = rig.counts("tas")
    assert counts["invalid_payload"] == 3
    assert counts["bad_device_id"] == 1  # 80 characters: refused, not cut
    assert rig.state("pl_ug") is State.ONLINE  # a space becomes '_'
    assert rig.state("plug-1") is State.ONLINE
    assert not rig.feed(6, "stat/plug-1/RESULT", "{}")  # not a tele topic: not ours


def test_tasmota_retained_offline_at_start_is_held_through_warmup() -> None:
    rig = Rig([TasmotaAdapter("tas", interval=10)])
    rig.feed(0, "tele/plug-1/LWT", "Online")
    rig.engine.start_warmup(1, 5)
    # The monitor resubscribes; the broker replays the retained will.
    rig.feed(1, "tele/plug-1/LWT", "Offline", retained=True)
    rig.tick(5.9)
    assert rig.state("plug-1") is State.ONLINE
    rig.tick(6)
    assert rig.state("plug-1") is State.OFFLINE


def test_esphome_status_and_states() -> None:
    rig = Rig([ESPHomeAdapter("esp", interval=10)])
    rig.feed(0, "kitchen/status", "online", retained=True)
    assert rig.state("kitchen") is State.UNKNOWN
    rig.feed(1, "kitchen/status", "online")
    assert rig.state("kitchen") is State.ONLINE
    rig.feed(8, "kitchen/sensor/temperature/state", "21.5")
    rig.tick(8 + 19.9)
    assert rig.state("kitchen") is State.ONLINE
    rig.feed(30, "kitchen/status", "offline")
    rig.feed(30.5, "kitchen/status", "online")  # reconnect within the will hold
    rig.tick(40)
    assert rig.state("kitchen") is State.ONLINE
    rig.feed(41, "kitchen/status", "offline")
    rig.tick(43)
    assert rig.state("kitchen") is State.OFFLINE
    rig.feed(44, "kitchen/status", "sleeping")
    assert rig.counts("esp")["invalid_payload"] == 1


def test_esphome_with_a_root() -> None:
    rig = Rig([ESPHomeAdapter("esp", root="esphome", id_prefix="esp-")])
    assert rig.ingest.filters[0] == "esphome/+/status"
    rig.feed(0, "esphome/garage/status", "online")
    assert rig.state("esp-garage") is State.ONLINE
    assert not rig.feed(1, "garage/status", "online")


def test_zigbee2mqtt_availability_bridge_and_messages() -> None:
    rig = Rig([Zigbee2MqttAdapter("z2m", interval=10)])
    rig.feed(0, "zigbee2mqtt/bridge/state", '{"state":"online"}', retained=True)
    rig.feed(0, "zigbee2mqtt/Living Room/lamp/availability", '{"state":"online"}')
    assert rig.state("Living_Room.lamp") is State.ONLINE
    rig.feed(1, "zigbee2mqtt/Living Room/lamp", '{"state":"ON","brightness":254,"linkquality":87}')
    rig.feed(2, "zigbee2mqtt/Living Room/lamp/set", '{"state":"OFF"}')
    rig.feed(3, "zigbee2mqtt/bridge/logging", '{"level":"info","message":"x"}')
    rig.feed(4, "zigbee2mqtt/sensor-1/availability", "offline")  # bare word (before 1.30)
    counts = rig.counts("z2m")
    assert counts["ignored_command"] == 1
    assert counts["ignored_bridge"] == 1
    assert rig.state("zigbee2mqtt.bridge") is State.UNKNOWN
    rig.feed(5, "zigbee2mqtt/bridge/state", "offline")
    rig.tick(7)
    assert rig.state("zigbee2mqtt.bridge") is State.OFFLINE
    rig.tick(7)
    assert rig.state("sensor-1") is State.OFFLINE
    rig.feed(8, "zigbee2mqtt/Living Room/lamp", "ON")
    rig.feed(8, "zigbee2mqtt/Living Room/lamp/availability", '{"state":"gone"}')
    assert counts != rig.counts("z2m")
    assert rig.counts("z2m")["invalid_payload"] == 2


def test_shelly_online_and_events() -> None:
    rig = Rig([ShellyAdapter("shelly", interval=10)])
    dev = "shellyplus1pm-a8032ab12345"
    rig.feed(0, f"{dev}/online", "true", retained=True)
    notify = {
        "src": dev,
        "dst": f"{dev}/events",
        "method": "NotifyStatus",
        "params": {"ts": 1_800_000_001.25, "switch:0": {"id": 0, "output": True}},
    }
    rig.feed(1, f"{dev}/events/rpc", json.dumps(notify))
    assert rig.state(dev) is State.ONLINE
    rig.feed(2, f"{dev}/status/switch:0", '{"id":0,"output":true,"apower":12.5}')
    rig.feed(3, f"{dev}/online", "false")
    rig.tick(5)
    assert rig.state(dev) is State.OFFLINE
    rig.feed(6, f"{dev}/online", "perhaps")
    assert rig.counts("shelly")["invalid_payload"] == 1
    assert rig.counts("shelly")["heartbeat_accepted"] == 2


def test_generic_rule_with_seq_and_session() -> None:
    rule = GenericAdapter(
        "home",
        topic="home/+/alive",
        id_segment=1,
        interval=10,
        seq_path="n",
        session_path="boot.id",
        ts_path="t",
        presence_topic="home/+/conn",
    )
    rig = Rig([rule])
    rig.feed(0, "home/pump/conn", "online")
    rig.feed(1, "home/pump/alive", '{"n": 1, "boot": {"id": 7}, "t": 1800000001}')
    rig.feed(2, "home/pump/alive", '{"n": 1, "boot": {"id": 7}, "t": 1800000001}')
    rig.feed(3, "home/pump/alive", '{"n": 0, "boot": {"id": 7}, "t": 1800000001}')
    counts = rig.counts("home")
    assert counts["heartbeat_duplicate"] == 2
    # The presence topic carries no session, so the first beat naming boot 7 was a
    # session change too; boot 8 is the second.
    rig.feed(4, "home/pump/alive", '{"n": 0, "boot": {"id": 8}, "t": 1800000004}')
    assert rig.counts("home")["heartbeat_reconnected"] == 2
    rig.feed(5, "home/pump/alive", '{"n": "x", "boot": {"id": 8}, "t": 1}')
    rig.feed(5, "home/pump/alive", '{"boot": {"id": 8}, "t": 1}')
    assert rig.counts("home")["invalid_payload"] == 2
    assert rig.state("pump") is State.ONLINE


def test_generic_rule_without_sessions_detects_a_counter_restart() -> None:
    rig = Rig([GenericAdapter("g", topic="x/+/hb", id_segment=1, seq_path="seq", interval=10)])
    rig.feed(0, "x/d1/hb", '{"seq": 5}')
    rig.feed(1, "x/d1/hb", '{"seq": 5}')
    assert rig.counts("g")["heartbeat_duplicate"] == 1
    rig.feed(2, "x/d1/hb", '{"seq": 0}')  # rebooted: its counter restarted
    assert rig.counts("g")["heartbeat_reconnected"] == 1
    rig.feed(3, "x/d1/hb", '{"seq": 1}')
    assert rig.counts("g")["heartbeat_accepted"] == 2


def test_generic_rule_plain_payloads_never_duplicate() -> None:
    rig = Rig([GenericAdapter("g", topic="beat/#", id_segment=-1, interval=10)])
    for i in range(5):
        rig.feed(i, "beat/site-a/dev-9", "1")
    assert rig.counts("g")["heartbeat_accepted"] == 5
    assert rig.state("dev-9") is State.ONLINE


def test_generic_rule_presence_death_names_the_session_of_the_beats() -> None:
    rule = GenericAdapter(
        "home",
        topic="home/+/alive",
        id_segment=1,
        interval=10,
        session_path="boot",
        presence_topic="home/+/conn",
    )
    rig = Rig([rule])
    rig.feed(0, "home/pump/conn", "online")
    rig.feed(1, "home/pump/alive", '{"boot": "b7"}')
    rig.feed(2, "home/pump/conn", "offline")
    rig.tick(4.1)
    assert rig.state("pump") is State.OFFLINE


def test_reported_objects_are_kept_as_metrics_when_small_and_shallow() -> None:
    adapter = TasmotaAdapter("tas")
    view = lambda _d: None  # noqa: E731
    small = adapter.decode("tele/p/SENSOR", TASMOTA_SENSOR.encode(), wall=0, view=view)
    assert isinstance(small, tuple)
    assert small[0] == Beat("p", metrics=json.loads(TASMOTA_SENSOR))
    big = json.dumps({"pad": "x" * 5000}).encode()
    deep = ('{"a":' * 40 + "1" + "}" * 40).encode()
    for payload in (big, deep):
        decoded = adapter.decode("tele/p/STATE", payload, wall=0, view=view)
        assert decoded == (Beat("p"),)  # still a beat, its payload just not kept
