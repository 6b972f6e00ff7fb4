"""Receiving the fleet from nats-server: its MQTT gateway at QoS 1, or core NATS.

Devices publish heartbeats over MQTT (QoS 1) to a real nats-server with MQTT and
JetStream. The same load is received two ways, each by a process of its own whose CPU
time is measured from its first message to its last:

* **mqtt** (baseline, what the monitor does today): the monitor's own ``MqttLink``
  (``DirectClient``, MQTT 3.1.1) subscribed at QoS 1 to ``{root}/devices/+/heartbeat``.
  The gateway delivers each message through a JetStream consumer and wants a PUBACK.
* **core**: a core NATS subscription (nats-py) to ``clawbeat.v1.devices.*.heartbeat``:
  no JetStream, no acknowledgement; the messages arrive as the gateway routes them.

Reported: messages per CPU-second of the receiver, and messages lost (acknowledged to
the publishers, never received). Rounds alternate between the two, so drift on a
shared machine hits both alike.

``python -m bench.bench_nats_ingest`` (about a minute) prints JSON and rewrites the
``bench_nats_ingest`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from bench.perf_doc import finish

ROOT = "clawbeat/v1"
SUBJECT = "clawbeat.v1.devices.*.heartbeat"
# A receiver that hears nothing this long after its last message is done.
IDLE_END = 3.0


# -- the receiving process ------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.first_cpu = 0.0
        self.last_cpu = 0.0
        self.first_wall = 0.0
        self.last_wall = 0.0

    def hit(self) -> None:
        if self.count == 0:
            self.first_cpu, self.first_wall = time.process_time(), time.monotonic()
        self.count += 1
        self.last_cpu, self.last_wall = time.process_time(), time.monotonic()

    def report(self) -> dict[str, float]:
        return {
            "received": self.count,
            "cpu_s": self.last_cpu - self.first_cpu,
            "wall_s": self.last_wall - self.first_wall,
        }


async def _until_idle(counter: _Counter, expected: int) -> None:
    while True:
        await asyncio.sleep(0.2)
        if counter.count >= expected:
            return
        if counter.count and time.monotonic() - counter.last_wall > IDLE_END:
            return


async def _receive_mqtt(port: int, expected: int) -> dict[str, float]:
    from device_client.urls import parse_broker_url  # noqa: PLC0415 - receiver only
    from monitor.mqtt_link import LinkOptions, MqttLink  # noqa: PLC0415

    counter = _Counter()
    ready = asyncio.Event()

    async def connected() -> None:
        ready.set()

    link = MqttLink(
        LinkOptions(
            address=parse_broker_url(f"mqtt://monitor@127.0.0.1:{port}"),
            client_id="bench-monitor",
            keepalive=30,
            subscriptions=(f"{ROOT}/devices/+/heartbeat",),
            will_topic=f"{ROOT}/monitor/presence",
            will_payload=b'{"state":"offline"}',
            protocol="3.1.1",
        ),
        on_message=lambda *_: counter.hit(),
        on_connected=connected,
        on_disconnected=lambda: None,
    )
    task = asyncio.create_task(link.run())
    await ready.wait()
    print("ready", flush=True)
    await _until_idle(counter, expected)
    await link.stop()
    task.cancel()
    return counter.report()


async def _receive_core(port: int, expected: int) -> dict[str, float]:
    import nats  # noqa: PLC0415 - receiver only

    counter = _Counter()

    async def on_message(_msg: Any) -> None:
        counter.hit()

    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    await nc.subscribe(SUBJECT, cb=on_message, pending_msgs_limit=1_000_000)
    await nc.flush()
    print("ready", flush=True)
    await _until_idle(counter, expected)
    await nc.close()
    return counter.report()


def _receiver(kind: str, port: int, expected: int) -> int:
    receive = _receive_mqtt if kind == "mqtt" else _receive_core
    print(json.dumps(asyncio.run(receive(port, expected))), flush=True)
    return 0


# -- the publishers (devices) --------------------------------------------------------------


def _publish(port: int, messages: int, rate: float, connections: int) -> int:
    """Publish ``messages`` heartbeats at QoS 1 at about ``rate``/s; return those acked."""
    acked = 0
    lock = threading.Lock()
    clients = []
    for index in range(connections):
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"bench-pub-{index}",
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.max_inflight_messages_set(100)

        def on_publish(*_args: Any) -> None:
            nonlocal acked
            with lock:
                acked += 1

        client.on_publish = on_publish
        client.connect("127.0.0.1", port, 30)
        client.loop_start()
        clients.append(client)
    started = time.monotonic()
    infos = []
    for seq in range(messages):
        device = f"dev-{seq % 5000:05d}"
        body = json.dumps({"seq": seq, "session": "0123456789abcdef", "interval": 30})
        client = clients[seq % connections]
        infos.append(client.publish(f"{ROOT}/devices/{device}/heartbeat", body, qos=1))
        ahead = started + (seq + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    for info in infos:
        info.wait_for_publish(30)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return acked


# -- one round, the run ---------------------------------------------------------------------


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _round(
    kind: str, ports: dict[str, int], messages: int, rate: float, server_pid: int
) -> dict[str, Any]:
    port = ports["mqtt"] if kind == "mqtt" else ports["client"]
    command = [sys.executable, "-m", "bench.bench_nats_ingest", "--receiver", kind]
    command += ["--port", str(port), "--messages", str(messages)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the {kind} receiver did not start")
    server_before = _cpu(server_pid)
    acked = _publish(ports["mqtt"], messages, rate, connections=8)
    out, _ = proc.communicate(timeout=120)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    # The broker's CPU for the round (publishers included, the same in both).
    result["server_cpu_s"] = _cpu(server_pid) - server_before
    result["acked"] = acked
    result["lost"] = acked - int(result["received"])
    return result


def run(messages: int, rate: float, rounds: int) -> dict[str, Any]:
    from tests.harness.nats import NatsServer  # noqa: PLC0415 - bench-only deps

    results: dict[str, list[dict[str, Any]]] = {"mqtt": [], "core": []}
    with tempfile.TemporaryDirectory(prefix="clawbeat-bench-nats-") as tmp:
        server = NatsServer(Path(tmp) / "nats", mappings={})
        server.start()
        try:
            ports = {"client": server.port, "mqtt": server.mqtt_port}
            pid = server.pid
            _round("mqtt", ports, min(messages, 2000), rate, pid)  # warm: streams, consumers
            for _ in range(rounds):
                for kind, rows in results.items():
                    rows.append(_round(kind, ports, messages, rate, pid))
        finally:
            server.stop()
    per_cpu = {
        kind: sorted(round(r["received"] / r["cpu_s"]) for r in rows if r["cpu_s"] > 0)
        for kind, rows in results.items()
    }
    best = {kind: values[-1] for kind, values in per_cpu.items()}
    version = subprocess.run(
        [server.binary, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "benchmark": "bench_nats_ingest",
        "date": time.strftime("%Y-%m-%d"),
        "messages": messages,
        "rate": rate,
        "rounds": rounds,
        "nats_server": version,
        "per_cpu_s": per_cpu,
        "lost": {kind: [r["lost"] for r in rows] for kind, rows in results.items()},
        "server_us_per_msg": {
            kind: sorted(round(1e6 * r["server_cpu_s"] / messages) for r in rows)
            for kind, rows in results.items()
        },
        "ratio": round(best["core"] / best["mqtt"], 2),
        "load": os.getloadavg()[0],
    }


def render(report: dict[str, Any], m: dict[str, Any]) -> str:
    per, lost, srv = report["per_cpu_s"], report["lost"], report["server_us_per_msg"]

    def span(values: list[int]) -> str:
        return f"{values[0]:,}-{values[-1]:,}" if values[0] != values[-1] else f"{values[0]:,}"

    return "\n".join(
        [
            "## Receiving from NATS: MQTT gateway or core NATS (`bench/bench_nats_ingest.py`)",
            "",
            f"Measured {report['date']} on {m['nproc']} CPUs ({m['cpu']}), Python "
            f"{m['python']}, {report['nats_server']}; the machine was shared with other "
            f"work (load average {report['load']:.1f}), so the ranges over "
            f"{report['rounds']} rounds matter more than any one figure.",
            "",
            "| received by | messages per CPU-second of the receiver | lost | nats-server "
            "CPU µs per message |",
            "|---|---|---|---|",
            f"| MQTT gateway, QoS 1 (`MqttLink`, baseline) | {span(per['mqtt'])} "
            f"| {', '.join(str(n) for n in lost['mqtt'])} | {span(srv['mqtt'])} |",
            f"| core NATS subscription (nats-py) | **{span(per['core'])}** "
            f"| {', '.join(str(n) for n in lost['core'])} | {span(srv['core'])} |",
            "",
            f"Core NATS costs the receiver **{report['ratio']} times** less CPU per message "
            "(best rounds). How: 8 MQTT 3.1.1 publishers send "
            f"{report['messages']:,} QoS 1 heartbeats at {report['rate']:,.0f}/s to one "
            "nats-server with MQTT and JetStream on loopback; the receiver, a process of "
            "its own, counts them; its CPU time runs from its first message to its last. "
            "Lost: acknowledged to a publisher, never received. nats-server's CPU covers "
            "the whole round, receiving from the publishers included (the same in both).",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_nats_ingest", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=4_000.0, help="heartbeats/s offered")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    parser.add_argument("--receiver", choices=("mqtt", "core"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        return _receiver(args.receiver, args.port, args.messages)
    report = run(args.messages, args.rate, args.rounds)
    finish("bench_nats_ingest", report, render, write_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
