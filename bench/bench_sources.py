"""Sparkplug B ingest beside protocol v1 ingest, in-process, in messages per CPU-second.

Run: ``.venv/bin/python -m bench.bench_sources [--devices N] [--rounds R] [--quick]
[--no-doc]``; prints JSON and rewrites its section of docs/performance.md.

Both paths get the same number of messages for the same number of devices, each message
a beat carrying one metric, and end in the same liveness engine call, so the ratio is the
cost of the convention, not of the engine:

* ``v1``: ``clawbeat/v1/devices/{id}/heartbeat`` JSON payloads through ``Ingest.handle``
  (``monitor/ingest.py``: topic parse, payload decode, engine heartbeat, counters).
* ``sparkplug``: protobuf ``Payload``s through ``SourceIngest.handle``
  (``monitor/sources/ingest.py``: filter match, ``SparkplugAdapter.decode`` with the
  node's seq unwrapping and alias lookup, session resolution, engine heartbeat,
  counters). The devices are edge nodes of ten ids each: the node itself (NDATA) and
  nine devices behind it (DDATA), so a round is one message per id, as for v1.

Payloads are encoded beforehand (encoding is the device's cost). Each id gets its first
message untimed (the NBIRTH/DBIRTH or first heartbeat that starts its session), then
``rounds`` messages per id are timed with ``time.process_time``. Every timed message
must be counted accepted, or the run fails.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

from bench.perf_doc import finish
from device_client import protocol
from device_client.protocol import Heartbeat, Presence, Topics
from monitor.ingest import Ingest
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.outcomes import EventResult
from monitor.sources.ingest import SourceIngest
from monitor.sources.resolve import engine_view
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.sources.sparkplug_b_pb2 import Payload

WALL0 = 1_800_000_000.0
INTERVAL = 30.0
PER_NODE = 10  # ids per edge node: the node and nine devices behind it
GROUP = "plant"
_UINT64, _DOUBLE = 8, 10

Message = tuple[str, bytes]


class EngineSink:
    """The sink both ingest paths call: the engine, as the service hands events to it."""

    def __init__(self) -> None:
        self.engine = LivenessEngine(default_interval=INTERVAL)

    def heartbeat(
        self, device_id: str, hb: Heartbeat, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        return self.engine.heartbeat(device_id, hb, now, wall, retained=retained)

    def presence(
        self, device_id: str, presence: Presence, *, retained: bool, now: float, wall: float
    ) -> EventResult:
        return self.engine.presence(device_id, presence, now, wall, retained=retained)


def v1_messages(devices: int, rounds: int) -> list[list[Message]]:
    """Round 0 (untimed) and ``rounds`` timed rounds of one heartbeat per device."""
    topics = Topics()
    names = [topics.heartbeat(f"dev-{n:07d}") for n in range(devices)]
    sessions = [f"{n * 2654435761 % 2**64:016x}" for n in range(devices)]
    return [
        [
            (
                names[n],
                protocol.encode_heartbeat(
                    Heartbeat(
                        seq=r,
                        session=sessions[n],
                        interval=INTERVAL,
                        ts=WALL0 + r,
                        metrics={"temperature": 20.0 + r},
                    )
                ),
            )
            for n in range(devices)
        ]
        for r in range(rounds + 1)
    ]


def _spb(seq: int, ts_ms: int) -> Payload:
    msg = Payload(timestamp=ts_ms)
    msg.seq = seq
    return msg


def sparkplug_messages(devices: int, rounds: int) -> list[list[Message]]:
    """Round 0: NBIRTH + DBIRTHs (untimed); then NDATA + DDATAs, metrics by alias."""
    nodes = devices // PER_NODE
    out: list[list[Message]] = []
    for r in range(rounds + 1):
        ts_ms = round((WALL0 + r) * 1000)
        batch: list[Message] = []
        for node in range(nodes):
            edge = f"node-{node:06d}"
            seq = r * PER_NODE  # one seq per message of the node, wrapped at 256
            msg = _spb(seq % 256, ts_ms)
            if r == 0:
                msg.metrics.add(name="bdSeq", datatype=_UINT64, long_value=0)
                msg.metrics.add(name="temperature", alias=1, datatype=_DOUBLE, double_value=20.0)
                batch.append((f"spBv1.0/{GROUP}/NBIRTH/{edge}", msg.SerializeToString()))
            else:
                msg.metrics.add(alias=1, datatype=_DOUBLE, double_value=20.0 + r)
                batch.append((f"spBv1.0/{GROUP}/NDATA/{edge}", msg.SerializeToString()))
            for device in range(1, PER_NODE):
                msg = _spb((seq + device) % 256, ts_ms)
                if r == 0:
                    msg.metrics.add(name="temperature", alias=1, datatype=_DOUBLE, double_value=20)
                    kind = "DBIRTH"
                else:
                    msg.metrics.add(alias=1, datatype=_DOUBLE, double_value=20.0 + r)
                    kind = "DDATA"
                batch.append(
                    (f"spBv1.0/{GROUP}/{kind}/{edge}/dev-{device}", msg.SerializeToString())
                )
        out.append(batch)
    return out


Handler = Callable[[str, bytes, bool, float, float], object]


def run(handle: Handler, rounds: list[list[Message]]) -> tuple[float, int]:
    """Feed round 0 untimed, then time the rest; CPU-seconds and messages timed."""
    for topic, payload in rounds[0]:
        handle(topic, payload, False, 0.0, WALL0)
    timed = 0
    started = time.process_time()
    for r, batch in enumerate(rounds[1:], start=1):
        now = float(r)
        wall = WALL0 + now
        for topic, payload in batch:
            handle(topic, payload, False, now, wall)
        timed += len(batch)
    return time.process_time() - started, timed


def _figures(cpu: float, messages: int, counts: dict[str, int], tracked: int) -> dict[str, Any]:
    return {
        "messages": messages,
        "cpu_seconds": round(cpu, 3),
        "messages_per_cpu_second": round(messages / cpu),
        "microseconds_per_message": round(cpu / messages * 1e6, 2),
        "tracked_ids": tracked,
        "counts": counts,
    }


def measure_v1(devices: int, rounds: int) -> dict[str, Any]:
    messages = v1_messages(devices, rounds)
    sink = EngineSink()
    ingest = Ingest(Topics(), sink, logging.getLogger("bench.sources"))
    cpu, timed = run(ingest.handle, messages)
    accepted = ingest.counts["heartbeat_accepted"] - devices  # round 0 started the sessions
    if accepted != timed:
        raise SystemExit(f"v1: {accepted} of {timed} heartbeats accepted: {dict(ingest.counts)}")
    return _figures(cpu, timed, dict(ingest.counts), len(sink.engine))


def measure_sparkplug(devices: int, rounds: int) -> dict[str, Any]:
    messages = sparkplug_messages(devices, rounds)
    sink = EngineSink()
    adapter = SparkplugAdapter("plant", interval=INTERVAL, group=GROUP)
    ingest = SourceIngest(
        [adapter], sink, engine_view(sink.engine), logging.getLogger("bench.sources")
    )
    cpu, timed = run(ingest.handle, messages)
    births = len(messages[0])
    accepted = ingest.counts["heartbeat_accepted"] - births
    if accepted != timed:
        raise SystemExit(f"sparkplug: {accepted} of {timed} beats accepted: {dict(ingest.counts)}")
    return _figures(cpu, timed, dict(ingest.counts), len(sink.engine))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_sources")
    parser.add_argument("--devices", type=int, default=100_000, help="a multiple of 10")
    parser.add_argument("--rounds", type=int, default=5, help="timed messages per device")
    parser.add_argument("--quick", action="store_true", help="10,000 devices, 2 rounds")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    args = parser.parse_args(argv)
    devices, rounds = (10_000, 2) if args.quick else (args.devices, args.rounds)
    if devices < PER_NODE or devices % PER_NODE or rounds < 1:
        parser.error("--devices must be a positive multiple of 10 and --rounds at least 1")
    v1 = measure_v1(devices, rounds)
    sparkplug = measure_sparkplug(devices, rounds)
    report = {
        "benchmark": "bench_sources",
        "date": time.strftime("%Y-%m-%d"),
        "devices": devices,
        "rounds": rounds,
        "v1": v1,
        "sparkplug": sparkplug,
        "ratio_sparkplug_to_v1": round(
            sparkplug["messages_per_cpu_second"] / v1["messages_per_cpu_second"], 2
        ),
    }
    finish("bench_sources", report, render, write_doc=not args.no_doc)
    return 0


def _row(path: str, f: dict[str, Any]) -> str:
    return (
        f"| {path} | {f['messages']:,} | {f['cpu_seconds']} "
        f"| {f['messages_per_cpu_second']:,} | {f['microseconds_per_message']} |"
    )


def render(report: dict[str, Any], machine: dict[str, Any]) -> str:
    v1, spb = report["v1"], report["sparkplug"]
    return f"""## Sparkplug B ingest beside protocol v1 (`bench/bench_sources.py`)

Measured {report["date"]}: {report["devices"]:,} devices, {report["rounds"]} timed messages each,
in-process (no broker), CPU time (`time.process_time`) of the receive path from topic
and payload to the liveness engine's verdict:

| path | messages | CPU-seconds | messages per CPU-second | µs per message |
|---|---|---|---|---|
{_row("protocol v1 (`Ingest.handle`)", v1)}
{_row("Sparkplug B (`SourceIngest.handle`)", spb)}

**Sparkplug B / protocol v1: {report["ratio_sparkplug_to_v1"]}** (messages per CPU-second).

How: both paths end in the same `LivenessEngine.heartbeat` and each message is a beat
carrying one numeric metric. Protocol v1 gets JSON heartbeats on
`clawbeat/v1/devices/{{id}}/heartbeat` through `monitor/ingest.py` (topic parse, decode,
engine, counters). Sparkplug gets protobuf payloads through `monitor/sources/ingest.py`
(filter match, `SparkplugAdapter.decode` with seq unwrapping and metric aliases, session
resolution, engine, counters); its devices are edge nodes of ten ids each, the node
(NDATA) and nine devices behind it (DDATA), so a round is one message per id for both.
Payloads are encoded beforehand; each id's first message (heartbeat, or NBIRTH/DBIRTH)
is untimed; every timed message must be counted accepted or the run fails. The figures
are one process on one core; the MQTT client and the database writes, the same for both
conventions, come on top (see *Monitor end to end* above).
Machine: {machine["nproc"]} x {machine["cpu"]}, Python {machine["python"]}."""


if __name__ == "__main__":
    raise SystemExit(main())
