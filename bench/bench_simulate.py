"""Benchmark: ``clawbeat simulate`` holding 2,000 devices against a real Mosquitto.

Starts the project's Mosquitto (``tests.harness.mosquitto.running_broker``), provisions
the devices, runs the simulator as its own process for about a minute, and samples its
CPU and RSS with psutil once a second while an observer (the monitor user) counts what
actually reaches the broker. The result replaces this benchmark's section of
``docs/performance.md``.

Run from the repository root: ``.venv/bin/python -m bench.bench_simulate``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from device_client import protocol
from tests.harness.mosquitto import TestBroker, running_broker

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "performance.md"
START, END = "<!-- bench_simulate:start -->", "<!-- bench_simulate:end -->"
TOPICS = protocol.Topics()


@dataclass
class Observer:
    """The monitor's view: who is online, how many heartbeats arrive."""

    online: set[str] = field(default_factory=set)
    shutdowns: int = 0
    heartbeats: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device_id, kind = TOPICS.parse_device_topic(msg.topic)
        with self.lock:
            if kind is protocol.MessageKind.HEARTBEAT:
                self.heartbeats += 1
                return
            body = json.loads(msg.payload)
            if body["state"] == "online":
                self.online.add(device_id)
            elif body.get("reason") == "shutdown":
                self.shutdowns += 1
                self.online.discard(device_id)


def _observe(broker: TestBroker, observer: Observer) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=broker.monitor_user)
    client.username_pw_set(broker.monitor_user, broker.monitor_password)
    client.on_message = observer.on_message
    client.connect(broker.host, broker.port)
    client.subscribe([(TOPICS.heartbeat_filter, 1), (TOPICS.presence_filter, 1)])
    client.loop_start()
    return client


def _simulate_command() -> list[str]:
    script = Path(sys.executable).with_name("clawbeat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run(devices: int, interval: float, seconds: float, connect_rate: float) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-simulate-") as tmp,
        running_broker(Path(tmp) / "broker") as broker,
    ):
        password = "bench-password"
        prefix = "bench-"
        broker.add_devices([f"{prefix}{i:05d}" for i in range(devices)], password)
        observer = Observer()
        client = _observe(broker, observer)
        mosquitto = next((p for p in psutil.Process().children() if p.name() == "mosquitto"), None)
        log_path = Path(tmp) / "simulate.log"
        with log_path.open("wb") as log:
            launched = time.monotonic()
            sim = subprocess.Popen(
                [
                    *_simulate_command(),
                    "simulate",
                    *("--devices", str(devices), "--prefix", prefix),
                    *("--broker", f"mqtt://{broker.host}:{broker.port}"),
                    *("--password", password, "--interval", str(interval)),
                    *("--connect-rate", str(connect_rate), "--report-every", "10"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={k: v for k, v in os.environ.items() if not k.startswith("CLAWBEAT_")},
            )
            proc = psutil.Process(sim.pid)
            try:
                if not _wait(lambda: len(observer.online) >= devices, timeout=120):
                    raise TimeoutError(f"only {len(observer.online)} of {devices} came online")
                ramp = time.monotonic() - launched
                time.sleep(2 * interval)  # let first-beat bunching from the ramp settle
                cpu, rss, broker_cpu = [], [], []
                proc.cpu_percent(None)
                if mosquitto is not None:
                    mosquitto.cpu_percent(None)
                with observer.lock:
                    beats_before = observer.heartbeats
                started = time.monotonic()
                while time.monotonic() - started < seconds:
                    time.sleep(1.0)
                    cpu.append(proc.cpu_percent(None))
                    rss.append(proc.memory_info().rss)
                    if mosquitto is not None:
                        broker_cpu.append(mosquitto.cpu_percent(None))
                elapsed = time.monotonic() - started
                with observer.lock:
                    beats = observer.heartbeats - beats_before
                    still_online = len(observer.online)
                stop_at = time.monotonic()
                sim.send_signal(signal.SIGTERM)
                code = sim.wait(60)
                stop_seconds = time.monotonic() - stop_at
                _wait(lambda: observer.shutdowns >= devices, timeout=10)
            finally:
                if sim.poll() is None:
                    sim.kill()
                client.disconnect()
                client.loop_stop()
        sim_log = log_path.read_text()
        fleet_lines = re.findall(r"simulate: (fleet: connected=.*)", sim_log)
        acked = re.search(r"fleet stopped: (\d+)/\d+ shutdowns acknowledged", sim_log)
    return {
        "devices": devices,
        "interval": interval,
        "seconds": round(elapsed, 1),
        "connect_rate": connect_rate,
        "ramp_seconds": round(ramp, 1),
        "heartbeats_per_s": round(beats / elapsed, 1),
        "expected_per_s": round(devices / interval, 1),
        "online_at_end": still_online,
        "cpu_mean": round(statistics.fmean(cpu), 1),
        "cpu_p95": round(sorted(cpu)[int(0.95 * (len(cpu) - 1))], 1),
        "rss_mib": round(statistics.fmean(rss) / 2**20, 1),
        "rss_peak_mib": round(max(rss) / 2**20, 1),
        "broker_cpu_mean": round(statistics.fmean(broker_cpu), 1) if broker_cpu else None,
        "stop_seconds": round(stop_seconds, 1),
        "exit_code": code,
        "shutdowns_observed": observer.shutdowns,
        "last_fleet_line": fleet_lines[-1] if fleet_lines else "",
        "shutdowns_acked": int(acked.group(1)) if acked else 0,
    }


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        if found:
            model = found.group(1).strip()
    mosquitto = subprocess.run(
        ["mosquitto", "-h"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    return (
        f"{model}, {psutil.cpu_count()} logical CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, paho-mqtt "
        f"{_version('paho-mqtt')}, {mosquitto[0] if mosquitto else 'mosquitto'}"
    )


def _version(dist: str) -> str:
    from importlib.metadata import version  # noqa: PLC0415 - only for the report

    return version(dist)


def render(r: dict[str, Any]) -> str:
    broker_cpu = f"{r['broker_cpu_mean']} %" if r["broker_cpu_mean"] is not None else "n/a"
    return f"""{START}
## Fleet simulator (`bench/bench_simulate.py`)

Measured {time.strftime("%Y-%m-%d")} on {_machine()}; the broker ran on the same machine.

`clawbeat simulate --devices {r["devices"]} --interval {r["interval"]:g} --connect-rate \
{r["connect_rate"]:g}` against Mosquitto started from the project's `mosquitto.conf`
(password authentication, ACL, persistence), all devices sharing one password.

| measure | value |
|---|---|
| all {r["devices"]} devices online (presence seen by an observer) | {r["ramp_seconds"]} s \
after process start (the ramp alone is {r["devices"] / r["connect_rate"]:g} s) |
| heartbeats reaching the broker, steady state | {r["heartbeats_per_s"]}/s \
(expected {r["expected_per_s"]}/s) |
| devices online at the end of the run | {r["online_at_end"]} of {r["devices"]} |
| simulator CPU, mean / p95 of 1 s samples | {r["cpu_mean"]} % / {r["cpu_p95"]} % of one core |
| simulator RSS, mean / peak | {r["rss_mib"]} MiB / {r["rss_peak_mib"]} MiB |
| Mosquitto CPU, mean | {broker_cpu} of one core |
| SIGTERM to exit | {r["stop_seconds"]} s (exit code {r["exit_code"]}); shutdown \
presences acknowledged by the broker: {r["shutdowns_acked"]} |

How it was measured: the benchmark provisions the device users, subscribes as the monitor
user to every heartbeat and presence topic, starts the simulator as a separate process and
waits until every device has announced itself online. After two more intervals (so the
first beats bunched by the connect ramp have spread out) it samples the simulator's
`psutil` CPU percentage (100 % = one core) and RSS once a second for {r["seconds"]} s, and
counts the heartbeats the observer receives in that window. Then it sends SIGTERM and waits
for the process to exit; the simulator counts the shutdown presences the broker
acknowledged. (The observer received {r["shutdowns_observed"]}; it is not the reference: a
burst of 2,000 presences within a second can exceed what Mosquitto queues for one QoS 1
subscriber, `max_inflight_messages` 20 + `max_queued_messages` 1000, and a slow subscriber
then loses the rest of the burst.) The simulator's last periodic fleet line before the stop was:

```
{r["last_fleet_line"]}
```

All {r["devices"]} devices run in one process on one asyncio event loop thread: each is a
paho-mqtt client in external-loop mode (its socket registered with the loop, `loop_read` /
`loop_write` / `loop_misc` called by the loop, one timer per device), so there is no
thread per device.
{END}"""


def write_section(section: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2000, help="devices (%(default)s)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds (%(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="sampling (%(default)s)")
    parser.add_argument("--connect-rate", type=float, default=200.0, help="(%(default)s)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update the doc")
    args = parser.parse_args()
    result = run(args.devices, args.interval, args.seconds, args.connect_rate)
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_section(render(result))
        print(f"updated {DOC.relative_to(REPO)}")
    ok = result["exit_code"] == 0 and result["online_at_end"] == args.devices
    return 0 if ok and result["shutdowns_acked"] == args.devices else 1


if __name__ == "__main__":
    sys.exit(main())
