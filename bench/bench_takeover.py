"""Takeover of one partition holding 100,000 devices: from lease acquired to judging.

Two replicas (real ``clawbeat monitor`` processes in cluster mode) share one Mosquitto
and a throwaway PostgreSQL, hot standby: each loaded every device at start. With
``CLAWBEAT_PARTITIONS=2`` and 200,000 device rows seeded in bulk, each replica holds one
partition of about 100,000 devices. Each round stops the owner of one partition:

* **SIGKILL**: the owner dies; a device of its partition (the *victim*) announces a
  shutdown at once, so the survivor's engine has it offline while the database still
  says online. When the dead lease expires the survivor acquires it and takes it over;
  its catch-up reports the victim. Measured from the acquisition (``lease_history.at``,
  the database's clock) to the victim's offline status arriving at an observer, and to
  the survivor's ``cluster: acting for partitions`` log line (its clock; same machine).
* **SIGTERM**: the owner hands off and releases; the survivor acquires at its next
  step. Nothing changed meanwhile, so the log line is the signal.

After each round the stopped replica is started again (a new owner name) and takes its
share back by handoff. Rounds alternate between the two modes and the two replicas.

``python -m bench.bench_takeover`` (a few minutes) prints JSON and rewrites the
``bench_takeover`` section of ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.perf_doc import finish
from monitor.cluster.partitions import partition_of
from monitor.store import repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.migrate import upgrade
from monitor.store.rows import DeviceRow

ROOT = "clawbeat/v1"
TARGET_S = 2.0
_SEED_CHUNK = 10_000
# Long enough that no seeded device falls silent during the run: the fleet only has
# to be tracked, not to beat.
SEED_INTERVAL = 3600.0
SEED_SESSION = "5eed5eed5eed5eed"
# Longer than the fault tests' 3 s: after taking 100,000 devices over, a replica's event
# loop stalls for longer than that while it writes them all again (the `blind` lines this
# bench reports), and a 3 s lease then lapses and moves back and forth.
TIMING = {"lease_ttl": 30.0, "lease_renew_every": 3.0, "lease_margin": 5.0}
SETTINGS = {
    "cluster": "true",
    "log_level": "INFO",
    "warmup": 1,
    "flush_interval": 1,
    "mqtt_keepalive": 30,
}
_ACTING = re.compile(
    r"^(\S+ \S+Z) INFO +\S+: cluster: acting for partitions (\S+): (\d+) devices, "
    r"(\d+) changed",
    re.MULTILINE,
)


def _say(message: str) -> None:
    print(f"[bench_takeover {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def device_id(index: int) -> str:
    return f"tk-{index:07d}"


async def _seed(url: str, devices: int) -> float:
    """Write ``devices`` online device rows as the write-behind would; returns seconds."""
    await upgrade(url)
    engine = create_engine_for(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    started = time.monotonic()
    try:
        for first in range(0, devices, _SEED_CHUNK):
            rows = [
                DeviceRow(
                    id=device_id(i),
                    state="online",
                    since=now,
                    reason="heartbeat",
                    session=SEED_SESSION,
                    last_seq=42,
                    last_seen=now,
                    announced_interval=SEED_INTERVAL,
                    fw="1.4.2",
                    latest_metrics={"rssi": -61},
                )
                for i in range(first, min(first + _SEED_CHUNK, devices))
            ]
            async with sessions() as session, session.begin():
                await repository.upsert_devices(session, rows=rows, now=now)
    finally:
        await engine.dispose()
    return time.monotonic() - started


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.05)
    return found


class StatusClock:
    """An ops client stamping, with the wall clock, each status message it receives."""

    def __init__(self, url_parts: tuple[str, int, str, str]) -> None:
        host, port, user, password = url_parts
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-takeover")
        self.client.username_pw_set(user, password)
        self.seen: list[tuple[float, str, dict[str, Any]]] = []
        self.client.on_message = self._on_message
        self.client.connect(host, port, 30)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.retain:
            self.seen.append((time.time(), msg.topic, json.loads(msg.payload)))

    def watch(self, device: str) -> None:
        self.client.subscribe(f"{ROOT}/status/{device}", qos=1)

    def first(self, device: str, state: str, after: float) -> float | None:
        topic = f"{ROOT}/status/{device}"
        for at, t, payload in list(self.seen):
            if t == topic and at >= after and payload.get("state") == state:
                return at
        return None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _announce_shutdown(host: str, port: int, device: str, password: str) -> None:
    """The victim's clean stop: presence offline (shutdown) under its seeded session."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device)
    client.username_pw_set(device, password)
    client.connect(host, port, 30)
    client.loop_start()
    payload = json.dumps({"state": "offline", "session": SEED_SESSION, "reason": "shutdown"})
    client.publish(
        f"{ROOT}/devices/{device}/presence", payload, qos=1, retain=True
    ).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def _log_wall(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


_BLIND = re.compile(
    r"^(\S+ \S+Z) WARNING +\S+: blind: the monitor itself did not run for ([\d.]+) s",
    re.MULTILINE,
)


def _stalls(path: Path, after: float) -> list[float]:
    """Seconds of each event-loop stall the replica logged after ``after``."""
    text = path.read_text(errors="replace")
    return [float(m.group(2)) for m in _BLIND.finditer(text) if _log_wall(m.group(1)) >= after]


def _spans(text: str) -> set[int]:
    """The partitions of a log line's spans, ``0-3,7``."""
    found: set[int] = set()
    for span in text.split(","):
        low, _, high = span.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def _acting_lines(path: Path, after: float, held: set[int]) -> list[tuple[float, int, int]]:
    """(wall time, devices, changed) of each takeover of ``held`` logged after ``after``."""
    text = path.read_text(errors="replace")
    found = []
    for m in _ACTING.finditer(text):
        at = _log_wall(m.group(1))
        if at >= after and held <= _spans(m.group(2)):
            found.append((at, int(m.group(3)), int(m.group(4))))
    return found


@dataclass(frozen=True, slots=True)
class _Rig:
    cluster: Any  # tests.harness.monitor_cluster.MonitorCluster (a bench-only import)
    clock: StatusClock
    url: str
    host: str
    port: int
    victim_password: str


def _one_round(
    rig: _Rig, mode: str, stopped: str, survivor: str, held: set[int], victim: str
) -> dict[str, Any]:
    """Stop ``stopped`` (SIGKILL or SIGTERM) and time ``survivor`` taking ``held`` over."""
    from tests.harness.monitor_cluster import read_lease_history  # noqa: PLC0415

    rig.clock.watch(victim)
    time.sleep(0.5)  # the subscription is in place before anything happens
    owner = rig.cluster.replicas[survivor]
    rss = psutil.Process(owner.pid).memory_info().rss
    stopped_at = time.time()
    if mode == "kill":
        rig.cluster.replicas[stopped].kill()
        _announce_shutdown(rig.host, rig.port, victim, rig.victim_password)
    else:
        # The replica flushes and writes what it holds before it exits: a while, at
        # 100,000 devices; the survivor takes over as soon as the leases are released.
        exited: list[float] = []

        def stop() -> None:
            rig.cluster.replicas[stopped].terminate(300)
            exited.append(time.time())

        exiting = threading.Thread(target=stop)
        exiting.start()

    def acquired() -> list[float]:
        events = [
            e.at.timestamp()
            for e in read_lease_history(rig.url)
            if e.event == "acquire"
            and e.partition in held
            and owner.owns(e.owner)
            and e.at.timestamp() >= stopped_at
        ]
        return events if len(events) >= len(held) else []

    acquired_at = max(_wait(acquired, 60, "acquisition"))
    acting = _wait(lambda: _acting_lines(owner.log_path, stopped_at, held), 60, "takeover")
    acting_at, count, changed = acting[0]
    result: dict[str, Any] = {
        "mode": mode,
        "partitions": sorted(held),
        "devices": count,
        "changed": changed,
        "stop_to_acquired_s": round(acquired_at - stopped_at, 3),
        "acquired_to_acting_s": round(acting_at - acquired_at, 3),
        "survivor_rss_mib": round(rss / 2**20, 1),
    }
    if mode == "kill":
        status_at = _wait(lambda: rig.clock.first(victim, "offline", stopped_at), 60, "status")
        result["acquired_to_status_s"] = round(status_at - acquired_at, 3)
    # The rewrite of every taken device follows at the next flush windows.
    time.sleep(2 * TIMING["lease_renew_every"] + 5)
    result["stalls_after_s"] = _stalls(owner.log_path, acting_at)
    if mode == "term":
        exiting.join()
        result["term_to_exit_s"] = round(exited[0] - stopped_at, 1)
    return result


@contextlib.contextmanager
def _run_dir(keep: bool) -> Iterator[str]:
    """A scratch directory for the broker and the replicas' logs; ``keep``: left behind."""
    if keep:
        path = tempfile.mkdtemp(prefix="clawbeat-bench-takeover-")
        _say(f"replica logs in {path}")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="clawbeat-bench-takeover-") as path:
        yield path


def run(devices: int, partitions: int, rounds: int, *, keep: bool = False) -> dict[str, Any]:
    # Bench-only dependencies: the test harness starts the broker, database and replicas.
    from tests.harness.monitor_cluster import LeaseTiming, MonitorCluster  # noqa: PLC0415
    from tests.harness.mosquitto import running_broker  # noqa: PLC0415
    from tests.harness.postgres import obtain_server  # noqa: PLC0415
    from tests.mqtt_helpers import MqttProbe  # noqa: PLC0415

    by_partition: dict[int, list[str]] = {}
    for i in range(devices):
        by_partition.setdefault(partition_of(device_id(i), partitions), []).append(device_id(i))
    victims = {p: ids[: rounds * 2 + 2] for p, ids in by_partition.items()}
    names = ["a", "b"]
    results: list[dict[str, Any]] = []
    with (
        _run_dir(keep) as tmp,
        running_broker(Path(tmp) / "broker") as broker,
        obtain_server() as server,
    ):
        url = server.create_database("clawbeat_bench_takeover")
        _say(f"seeding {devices:,} devices over {partitions} partitions")
        seed_s = asyncio.run(_seed(url, devices))
        passwords = {d: broker.add_device(d) for ids in victims.values() for d in ids}
        timing = LeaseTiming(
            ttl=TIMING["lease_ttl"],
            renew_every=TIMING["lease_renew_every"],
            margin=TIMING["lease_margin"],
        )
        cluster = MonitorCluster(
            broker, url, Path(tmp), partitions=partitions, timing=timing, **SETTINGS
        )
        probe = MqttProbe(broker.url(broker.ops_user), client_id=broker.ops_user)
        probe.connect()
        probe.subscribe(f"{ROOT}/monitor/replicas/+/presence")
        clock = StatusClock(
            (broker.host, broker.port, broker.monitor_user, broker.monitor_password)
        )
        try:
            for name in names:
                cluster.add(name).start(120, probe=probe)
            cluster.wait_balanced(names, 120)
            used: set[str] = set()
            for index in range(rounds * 2):
                mode = ("kill", "term")[index % 2]
                stopped, survivor = names[(index // 2) % 2], names[1 - (index // 2) % 2]
                held = cluster.held_by(stopped)
                victim = next(d for d in victims[min(held)] if d not in used)
                used.add(victim)
                rig = _Rig(cluster, clock, url, broker.host, broker.port, passwords[victim])
                result = _one_round(rig, mode, stopped, survivor, held, victim)
                _say(f"round {index + 1}: {result}")
                results.append(result)
                # The stopped replica comes back and takes its share again by handoff.
                cluster.replicas.pop(stopped)
                cluster.add(stopped).start(120, probe=probe)
                cluster.wait_balanced(names, 120)
        finally:
            clock.close()
            probe.close()
            cluster.close()
    return {
        "devices": devices,
        "partitions": partitions,
        "seed_s": round(seed_s, 1),
        "timing": TIMING,
        "rounds": results,
        "load_average": round(psutil.getloadavg()[0], 1),
    }


def _range(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def render(report: dict[str, Any], m: dict[str, Any]) -> str:
    kill = [r for r in report["rounds"] if r["mode"] == "kill"]
    term = [r for r in report["rounds"] if r["mode"] == "term"]
    per_partition = round(statistics.mean(r["devices"] for r in report["rounds"]))
    worst = max(
        [r["acquired_to_status_s"] for r in kill] + [r["acquired_to_acting_s"] for r in term]
    )
    verdict = "meets" if worst <= TARGET_S else "misses"
    lines = [
        "## Takeover of a 100,000-device partition (`bench/bench_takeover.py`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {m['nproc']} CPUs ({m['cpu']}), Python "
        f"{m['python']}, {m['mosquitto']}; the machine was shared with other work (load "
        f"average {report['load_average']} at the end), so the ranges matter more than any "
        "one figure.",
        "",
        f"{report['devices']:,} devices, `CLAWBEAT_PARTITIONS={report['partitions']}`: each "
        f"partition holds about {per_partition:,}. Seconds, min / median / max over "
        f"{len(kill)} rounds each:",
        "",
        "| owner stopped by | stop → lease acquired | acquired → acting (log line) | "
        "acquired → victim's offline status received |",
        "|---|---|---|---|",
        f"| SIGKILL | {_range([r['stop_to_acquired_s'] for r in kill])} | "
        f"{_range([r['acquired_to_acting_s'] for r in kill])} | "
        f"**{_range([r['acquired_to_status_s'] for r in kill])}** |",
        f"| SIGTERM | {_range([r['stop_to_acquired_s'] for r in term])} | "
        f"**{_range([r['acquired_to_acting_s'] for r in term])}** | — |",
        "",
        f"Target ≤ {TARGET_S:.0f} s from lease acquired to judging: {verdict} (worst "
        f"{worst:.2f} s). Devices reported changed at takeover: "
        f"{', '.join(str(r['changed']) for r in kill)} (SIGKILL, the victim), "
        f"{', '.join(str(r['changed']) for r in term)} (SIGTERM). SIGTERM to the "
        "stopped replica's exit (it writes what it holds first; the survivor took over "
        f"meanwhile): {_range([r['term_to_exit_s'] for r in term])} s. Survivor RSS before the "
        f"takeover: {_range([r['survivor_rss_mib'] for r in report['rounds']])} MiB. "
        "Event-loop stalls the survivor logged (`blind: the monitor itself did not run`) "
        "after acting, seconds: "
        + "; ".join(
            ", ".join(f"{x:.1f}" for x in r["stalls_after_s"]) or "none" for r in report["rounds"]
        )
        + ".",
        "",
        "How: a Mosquitto from the repository's `mosquitto.conf` and a throwaway PostgreSQL "
        "(`fsync=off`); the device rows are seeded in bulk as the write-behind writes "
        f"them (online, announced interval {SEED_INTERVAL:.0f} s, so none falls silent "
        "during the run: the fleet is tracked, not beating). Two replicas, real `clawbeat "
        "monitor` processes with `CLAWBEAT_CLUSTER=true`, lease ttl "
        f"{report['timing']['lease_ttl']} s, renew every "
        f"{report['timing']['lease_renew_every']} s, both hot standby (each loaded every "
        "device). Each round stops the owner of one partition. **SIGKILL**: a device of "
        "that partition then announces its shutdown, which the survivor's engine takes "
        "in while the database still says online; the survivor acquires the lease once "
        "it expired and its catch-up reports the device. *acquired* is the acquisition's "
        "`lease_history.at` (PostgreSQL's `clock_timestamp()`), *victim's status* the "
        "wall clock when an observer subscribed to that device's status topic received "
        "the offline status (the same clock on one machine), *acting* the survivor's "
        "`cluster: acting for partitions` log line, written after the catch-up's "
        "transitions were handed to the publisher. **SIGTERM**: the owner hands off and "
        "releases; the survivor acquires at its next lease step; nothing changed, so the "
        "log line is the signal. Then the stopped replica is started again and takes its "
        "share back by handoff; rounds alternate between the modes and the replicas.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_takeover", description=__doc__)
    parser.add_argument("--devices", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per stop mode")
    parser.add_argument("--keep", action="store_true", help="keep the replicas' logs")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args(argv)
    from tests.harness.mosquitto import check_mosquitto_installed  # noqa: PLC0415

    if problem := check_mosquitto_installed():
        print(f"bench_takeover skipped: {problem}", file=sys.stderr)
        return 0
    report = run(args.devices, args.partitions, args.rounds, keep=args.keep)
    finish("bench_takeover", report, render, write_doc=not args.no_doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
