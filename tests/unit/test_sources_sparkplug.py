"""Sparkplug B through source ingest into a real engine, step by step (sparkplug.py P1-P6)."""

from __future__ import annotations

from monitor.liveness.states import Reason, State
from monitor.sources.events import Beat
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.sources.sparkplug_b_pb2 import Payload
from tests.sources_rig import WALL0, Rig
from tests.sparkplug_payloads import data, dbirth, ddeath, nbirth, ndeath

NODE = "plant.edge-1"
PUMP = "plant.edge-1.pump"
VALVE = "plant.edge-1.valve"


def ms(t: float) -> int:
    return round((WALL0 + t) * 1000)


def topic(kind: str, device: str | None = None) -> str:
    return f"spBv1.0/plant/{kind}/edge-1" + ("" if device is None else f"/{device}")


def born(rig: Rig, t: float = 0, bd: int = 0) -> None:
    rig.feed(t, topic("NBIRTH"), nbirth(bd, ts_ms=ms(t)))
    rig.feed(t, topic("DBIRTH", "pump"), dbirth(1, ts_ms=ms(t)))
    rig.feed(t, topic("DBIRTH", "valve"), dbirth(2, ts_ms=ms(t)))


def test_births_data_and_node_death_kill_its_devices() -> None:
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    born(rig)
    assert {rig.state(d) for d in (NODE, PUMP, VALVE)} == {State.ONLINE}
    rig.feed(5, topic("NDATA"), data(3, ts_ms=ms(5)))
    rig.feed(6, topic("DDATA", "pump"), data(4, ts_ms=ms(6)))
    rig.tick(6 + 19.9)
    assert rig.state(PUMP) is State.ONLINE
    assert rig.state(VALVE) is State.LATE  # no DDATA since its birth at 0
    rig.feed(26, topic("NDEATH"), ndeath(0, ts_ms=ms(0)))
    rig.tick(28)
    assert {rig.state(d) for d in (NODE, PUMP, VALVE)} == {State.OFFLINE}
    assert {t.reason for t in rig.transitions if t.new is State.OFFLINE} == {Reason.CONNECTION_LOST}


def test_device_death_and_rebirth() -> None:
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    born(rig)
    rig.feed(1, topic("DDEATH", "pump"), ddeath(3, ts_ms=ms(1)))
    rig.tick(3.1)
    assert rig.state(PUMP) is State.OFFLINE
    assert rig.state(NODE) is State.ONLINE
    assert rig.state(VALVE) is State.ONLINE
    rig.feed(4, topic("DBIRTH", "pump"), dbirth(4, ts_ms=ms(4)))
    assert rig.state(PUMP) is State.ONLINE


def test_late_ndeath_of_an_old_bdseq_is_ignored() -> None:
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    born(rig, 0, bd=4)
    rig.feed(1, topic("NDEATH"), ndeath(4, ts_ms=ms(0)))  # lost connection
    born(rig, 1.5, bd=5)  # reconnected within the will hold
    rig.feed(2, topic("NDEATH"), ndeath(4, ts_ms=ms(0)))  # the same old will, late
    rig.tick(10)
    assert {rig.state(d) for d in (NODE, PUMP, VALVE)} == {State.ONLINE}
    assert rig.counts("sp")["presence_stale-session"] == 1
    assert not [t for t in rig.transitions if t.new is State.OFFLINE]


def test_nbirth_without_death_ends_the_old_devices() -> None:
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    born(rig, 0, bd=1)
    rig.feed(1, topic("NBIRTH"), nbirth(2, ts_ms=ms(1)))
    rig.feed(1.5, topic("DBIRTH", "pump"), dbirth(1, ts_ms=ms(1.5)))
    rig.tick(4)
    assert rig.state(PUMP) is State.ONLINE
    assert rig.state(VALVE) is State.OFFLINE  # not reborn with the new node session


def test_seq_duplicates_and_wrap() -> None:
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    born(rig)  # seq 0, 1, 2
    rig.feed(1, topic("DDATA", "pump"), data(3, ts_ms=ms(1)))
    rig.feed(1, topic("DDATA", "pump"), data(3, ts_ms=ms(1)))  # redelivered
    assert rig.counts("sp")["heartbeat_duplicate"] == 1
    for i in range(4, 300):  # wraps 255 -> 0
        rig.feed(2, topic("NDATA"), data(i % 256, ts_ms=ms(2)))
    assert rig.counts("sp")["heartbeat_duplicate"] == 1
    rig.feed(3, topic("DDATA", "pump"), data(300 % 256, ts_ms=ms(3)))
    rig.feed(3, topic("DDATA", "pump"), data(299 % 256, ts_ms=ms(3)))  # older than the last
    assert rig.counts("sp")["heartbeat_duplicate"] == 2
    assert rig.counts("sp")["heartbeat_accepted"] == 3 + 1 + 296 + 1


def test_malformed_messages_are_counted_and_dropped() -> None:
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    born(rig)
    rig.feed(1, topic("NDATA"), b"\xff\xff\xff garbage")
    rig.feed(1, topic("NDATA"), data(300, ts_ms=ms(1)))
    rig.feed(1, topic("NBIRTH"), data(0, ts_ms=ms(1)))  # no bdSeq metric
    rig.feed(1, "spBv1.0/plant/NBIRTH/edge-1/extra", nbirth(1, ts_ms=ms(1)))
    rig.feed(1, "spBv1.0/plant/NOPE/edge-1", data(1, ts_ms=ms(1)))
    rig.feed(1, "spBv1.0/plant/DCMD/edge-1/pump", data(1, ts_ms=ms(1)))
    rig.feed(1, "spBv1.0/STATE/scada-1", b'{"online": true, "timestamp": 1}')
    counts = rig.counts("sp")
    assert counts["invalid_payload"] == 3
    assert counts["bad_topic"] == 2
    assert counts["ignored_command"] == 1
    assert counts["ignored_host_state"] == 1
    assert {rig.state(d) for d in (NODE, PUMP, VALVE)} == {State.ONLINE}


def test_after_a_restart_data_continues_and_ndeath_still_counts() -> None:
    first = Rig([SparkplugAdapter("sp", interval=10)])
    born(first, 0, bd=9)
    snapshots = list(first.engine.snapshots())
    # A new monitor run: same database, new adapter state, no births (not retained).
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    rig.engine.load(snapshots, 100, WALL0 + 100)
    rig.feed(101, topic("DDATA", "pump"), data(7, ts_ms=ms(101)))
    assert rig.counts("sp")["heartbeat_accepted"] == 1  # the persisted session goes on
    rig.feed(102, topic("NDEATH"), ndeath(9, ts_ms=ms(0)))
    rig.tick(104.1)
    assert rig.state(NODE) is State.OFFLINE
    assert rig.state(PUMP) is State.OFFLINE  # heard of since the restart
    assert rig.state(VALVE) is not State.OFFLINE  # not heard of: its deadlines decide


def test_a_node_heard_of_without_a_birth_is_asked_to_rebirth_once() -> None:
    sent: list[tuple[str, bytes]] = []
    rig = Rig([SparkplugAdapter("sp", interval=10, request_rebirth=True)])
    rig.ingest.publish = lambda topic, payload: sent.append((topic, payload))
    rig.feed(0, topic("DDATA", "pump"), data(7, ts_ms=ms(0)))
    rig.feed(1, topic("NDATA"), data(8, ts_ms=ms(1)))
    assert [t for t, _ in sent] == ["spBv1.0/plant/NCMD/edge-1"]
    request = Payload.FromString(sent[0][1])
    assert [(m.name, m.datatype, m.boolean_value) for m in request.metrics] == [
        ("Node Control/Rebirth", 11, True)
    ]
    born(rig, 2, bd=3)  # the node answers with its births
    rig.feed(3, topic("NDATA"), data(3, ts_ms=ms(3)))
    assert len(sent) == 1
    assert rig.counts("sp")["command_sent"] == 1


def test_no_rebirth_request_unless_asked() -> None:
    sent: list[tuple[str, bytes]] = []
    rig = Rig([SparkplugAdapter("sp", interval=10)])
    rig.ingest.publish = lambda topic, payload: sent.append((topic, payload))
    rig.feed(0, topic("NDATA"), data(7, ts_ms=ms(0)))
    assert sent == []


def test_metric_values_by_name_also_when_data_names_them_by_alias() -> None:
    adapter = SparkplugAdapter("sp", interval=10)
    view = lambda _d: None  # noqa: E731
    birth = adapter.decode(topic("NBIRTH"), nbirth(1, ts_ms=ms(0)), wall=WALL0, view=view)
    assert isinstance(birth, tuple)
    beat = birth[-1]
    assert isinstance(beat, Beat)
    assert beat.metrics == {
        "bdSeq": 1,
        "Node Control/Rebirth": False,
        "temperature": 21.5,
    }
    later = adapter.decode(topic("NDATA"), data(1, ts_ms=ms(1), value=23.5), wall=WALL0, view=view)
    assert isinstance(later, tuple)
    assert isinstance(later[-1], Beat)
    assert later[-1].metrics == {"temperature": 23.5}  # alias 1, named by the birth
