"""End-to-end monitor benchmark: MQTT -> monitor -> committed PostgreSQL state.

Three measurements; whatever is measured runs in its own process, so CPU time and
memory are its alone:

1. **Throughput.** A real Mosquitto (the project's ``mosquitto.conf``, via the test
   harness) and a throwaway PostgreSQL cluster. ``--devices`` device users publish
   protocol heartbeats (QoS 1, retained, as protocol v1 says) from ``--publishers``
   paho processes, one MQTT connection per device (the ACL lets a device write only
   its own topics). The load goes first to a bare aiomqtt loop that only counts, then
   to the real :class:`MonitorService` writing to PostgreSQL, each in two timed
   phases: *live* (receiver running while the publishers go) and *backlog* (receiver
   stopped with SIGSTOP while they publish, timed from SIGCONT: its capacity without
   the load generator on the same CPUs). Reported: messages/s, receiver CPU seconds,
   and for the monitor the time until every device's last ``seq`` is committed.
2. **Memory per device** of the monitor's state (engine + service dicts) at 100k and
   1M devices, heartbeats fed through ``MonitorService.heartbeat`` (the call ingest
   makes), RSS delta measured with psutil.
3. **Detection latency** at 100k devices all missing their heartbeats, deadlines
   spread over 10 s: the service's own tick loop (100 ms, real ``time.monotonic``) and
   transition handling; latency = transitions handled - deadline.

``python -m bench.bench_monitor`` (3 to 4 minutes; ``--quick`` for a smoke run)
prints JSON and rewrites the ``bench_monitor`` section of ``docs/performance.md``.
``--profile`` adds a cProfile of the monitor process (which slows it: don't compare
those figures), ``--skip PART`` leaves a part out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import logging
import multiprocessing as mp
import os
import pstats
import resource
import selectors
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiomqtt
import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bench.perf_doc import machine, replace_section
from broker.runner import free_port
from device_client.protocol import DEFAULT_TOPIC_ROOT, Heartbeat, Topics, decode_heartbeat
from monitor.direct_client import DirectClient
from monitor.liveness.engine import LivenessEngine
from monitor.liveness.policy import DEFAULT_CLASS, Policy
from monitor.liveness.states import State, Transition
from monitor.logging_setup import configure_logging
from monitor.mqtt_link import LinkOptions, MqttLink
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.store.migrate import upgrade
from monitor.store.rows import DeviceRow, TransitionRow
from monitor.store.writer import WriteBehind

if TYPE_CHECKING:
    from tests.harness.mosquitto import TestBroker

REPO: Final = Path(__file__).resolve().parents[1]

TOPICS: Final = Topics(DEFAULT_TOPIC_ROOT)
# A realistic heartbeat (~130 bytes): the fields a device SDK sends, a couple of metrics.
PAYLOAD: Final = (
    '{"seq":%d,"session":"%s","interval":60,"ts":%.3f,"uptime":%.1f,'
    '"fw":"1.4.2","metrics":{"rssi":-61,"battery_v":3.71}}'
)
STALL_SECONDS: Final = 5.0
MP: Final = mp.get_context("spawn")


# ------------------------------------------------------------------------ helpers


def _say(message: str) -> None:
    """Progress on stderr; stdout carries only the JSON report."""
    print(f"[bench_monitor {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _rss() -> int:
    gc.collect()
    rss: int = psutil.Process().memory_info().rss
    return rss


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "p50": pick(0.50),
        "p90": pick(0.90),
        "p99": pick(0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def _device_ids(count: int) -> list[str]:
    return [f"bench-{i:06d}" for i in range(count)]


def _heartbeat(seq: int, session: str, interval: float, wall: float) -> Heartbeat:
    return Heartbeat(
        seq=seq,
        session=session,
        interval=interval,
        ts=wall,
        uptime=1260.5,
        fw="1.4.2",
        metrics={"rssi": -61, "battery_v": 3.71},
    )


# ------------------------------------------------------------------ 1. publishers


class _Publisher:
    """One process playing many devices: one paho connection each, no threads.

    paho runs without its network thread: ``publish`` writes straight to the socket and
    an epoll selector feeds ``loop_read`` (CONNACK, PUBACK), so thousands of connections
    cost one thread.
    """

    def __init__(self, host: str, port: int, ids: list[str], password: str, source: str) -> None:
        self.host = host
        self.port = port
        self.ids = ids
        self.password = password
        self.source = source
        self.selector = selectors.DefaultSelector()
        self.clients: list[tuple[paho.Client, str]] = []
        self.connected = 0
        self.refused = 0
        self.acked = 0
        self.published = 0
        self._misc_at = time.monotonic()

    def _on_connect(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: object,
        reason: ReasonCode,
        _props: object,
    ) -> None:
        if reason.is_failure:
            self.refused += 1
        else:
            self.connected += 1

    def _on_publish(
        self, _client: paho.Client, _userdata: object, _mid: int, _reason: object, _props: object
    ) -> None:
        self.acked += 1

    def connect_all(self, batch: int = 50, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for start in range(0, len(self.ids), batch):
            for device_id in self.ids[start : start + batch]:
                client = paho.Client(
                    CallbackAPIVersion.VERSION2,
                    client_id=device_id,
                    protocol=paho.MQTTv311,
                    clean_session=True,
                )
                client.username_pw_set(device_id, self.password)
                client.on_connect = self._on_connect
                client.on_publish = self._on_publish
                client.connect(self.host, self.port, keepalive=60, bind_address=self.source)
                sock = client.socket()
                assert sock is not None
                self.selector.register(sock, selectors.EVENT_READ, client)
                self.clients.append((client, TOPICS.heartbeat(device_id)))
            # Let the broker answer each batch: overflowing its listen backlog (100) costs
            # SYN retries of 1 s, 3 s, ... inside a blocking connect().
            while self.connected + self.refused < len(self.clients):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {self.connected} of {len(self.ids)} connected")
                self.pump(0.05)
        if self.refused:
            raise RuntimeError(f"broker refused {self.refused} device connections")

    def pump(self, timeout: float) -> None:
        for key, _events in self.selector.select(timeout):
            client: paho.Client = key.data
            client.loop_read()
        now = time.monotonic()
        if now - self._misc_at > 5.0:
            # Keepalive PINGREQs: without a network thread nobody else sends them.
            self._misc_at = now
            for client, _topic in self.clients:
                client.loop_misc()

    def publish_rounds(self, first: int, last: int, session: str) -> float:
        """Publish seq first..last for every device as fast as possible; wait for acks."""
        started = time.monotonic()
        boot = time.time() - 1260.0
        for seq in range(first, last + 1):
            wall = time.time()
            for client, topic in self.clients:
                payload = PAYLOAD % (seq, session, wall, wall - boot)
                client.publish(topic, payload, qos=1, retain=True)
                self.published += 1
            for client, _topic in self.clients:
                if client.want_write():
                    client.loop_write()
            self.pump(0)
        deadline = time.monotonic() + 120
        while self.acked < self.published and time.monotonic() < deadline:
            for client, _topic in self.clients:
                if client.want_write():
                    client.loop_write()
            self.pump(0.01)
        return time.monotonic() - started

    def close(self) -> None:
        for client, _topic in self.clients:
            with contextlib.suppress(Exception):
                client.disconnect()
        self.pump(0.1)


def _publisher_main(
    host: str, port: int, ids: list[str], password: str, source: str, ctl: Connection
) -> None:
    pub = _Publisher(host, port, ids, password, source)
    started = time.monotonic()
    pub.connect_all()
    ctl.send(("ready", time.monotonic() - started))
    while True:
        while not ctl.poll(0.05):
            pub.pump(0)
        command = ctl.recv()
        if command[0] == "go":
            _, first, last, session = command
            seconds = pub.publish_rounds(first, last, session)
            ctl.send(("done", seconds, pub.published, pub.acked))
        else:
            pub.close()
            return


# ------------------------------------------------------------------ 1. receivers


@dataclass
class _Shared:
    """Counters a receiver process updates and the parent reads (no locks: one writer)."""

    ready: Synchronized[int]
    count: Synchronized[int]
    last: Synchronized[float]
    # 1 while the receiver has nothing queued of its own (the monitor: status publishes
    # and transition rows); the bare loop never has.
    idle: Synchronized[int]

    @classmethod
    def make(cls) -> _Shared:
        return cls(
            MP.Value("q", 0, lock=False),
            MP.Value("q", 0, lock=False),
            MP.Value("d", 0.0, lock=False),
            MP.Value("q", 1, lock=False),
        )


def _bare_main(url: tuple[str, int, str, str], shared: _Shared) -> None:
    host, port, user, password = url

    async def run() -> None:
        # keepalive 300: the backlog phase stops this process for a while.
        async with aiomqtt.Client(
            host, port, username=user, password=password, identifier=user, keepalive=300
        ) as client:
            await client.subscribe(TOPICS.heartbeat_filter, qos=1)
            shared.ready.value = 1
            count = shared.count
            last = shared.last
            monotonic = time.monotonic
            async for _message in client.messages:
                count.value += 1
                last.value = monotonic()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def _direct_main(url: tuple[str, int, str, str], shared: _Shared) -> None:
    """The monitor's own receive path (``DirectClient``) with nothing behind it."""
    host, port, user, password = url

    async def run() -> None:
        count = shared.count
        last = shared.last

        def on_message(_t: str, _p: bytes, _r: bool, now: float, _w: float) -> None:
            count.value += 1
            last.value = now

        async with DirectClient(
            host, port, username=user, password=password, identifier=user, keepalive=300
        ) as client:
            await client.subscribe(TOPICS.heartbeat_filter, qos=1)
            client.deliver_to(on_message)
            shared.ready.value = 1
            async for _ in client.messages:  # ends only with the connection
                pass

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def _monitor_main(
    settings: dict[str, Any], shared: _Shared, ctl: Connection, profile_path: str | None
) -> None:
    configure_logging("WARNING", "text")
    service = MonitorService(MonitorSettings(**settings))

    async def sample() -> None:
        # Polls the ingest counter; 5 ms resolution is plenty for multi-second runs.
        seen = -1
        pending_peak = 0
        trace = bool(os.environ.get("BENCH_TRACE"))
        while True:
            asked = time.monotonic()
            await asyncio.sleep(0.005)
            if trace and time.monotonic() - asked > 0.25:
                _say(f"monitor event loop stalled {time.monotonic() - asked:.2f} s")
            if service.link is not None and service.link.connected:
                shared.ready.value = 1
                shared.idle.value = int(
                    service.link.pending == 0 and service.writer.pending_transitions == 0
                )
            if service.link is not None and trace:
                pending = service.link.pending
                if pending > pending_peak or (pending == 0 and pending_peak):
                    _say(f"monitor link pending {pending} (peak {pending_peak})")
                    pending_peak = 0 if pending == 0 else pending
            if service.ingest is not None:
                received = service.ingest.counts["received"]
                if received != seen:
                    seen = received
                    shared.count.value = received
                    shared.last.value = time.monotonic()

    async def run() -> int:
        sampler = asyncio.create_task(sample())
        try:
            return await service.run()
        finally:
            sampler.cancel()

    profiler = cProfile.Profile() if profile_path else None
    if profiler is not None:
        profiler.enable()
    code = asyncio.run(run())
    if profiler is not None and profile_path:
        profiler.disable()
        profiler.dump_stats(profile_path)
    ingest = service.ingest
    ctl.send(
        {
            "exit_code": code,
            "ingest": dict(ingest.counts) if ingest else {},
            "service": dict(service.counts),
            "writer": asdict(service.writer.stats),
        }
    )


# ------------------------------------------------------------------ 1. orchestration


@dataclass
class _Load:
    devices: int
    publishers: int
    live_rounds: int
    backlog_rounds: int


class _Fleet:
    """The publisher processes of one run (fresh connections, fresh session)."""

    # Each fleet connects from its own loopback address: the connections of the fleet
    # before it sit in TIME_WAIT for a minute, and three fleets of 10,000 from one
    # address would exhaust its ~28,000 ephemeral ports (the pid varies the address
    # between back-to-back bench runs too).
    _runs = 0

    def __init__(self, host: str, port: int, ids: list[str], password: str, n: int) -> None:
        _Fleet._runs += 1
        source = f"127.0.{_Fleet._runs}.{1 + os.getpid() % 250}" if host.startswith("127.") else ""
        self.procs: list[SpawnProcess] = []
        self.pipes: list[Connection] = []
        for index in range(n):
            parent, child = MP.Pipe()
            proc = MP.Process(
                target=_publisher_main,
                args=(host, port, ids[index::n], password, source, child),
                name=f"bench-publisher-{index}",
            )
            proc.start()
            self.procs.append(proc)
            self.pipes.append(parent)
        self.connect_seconds: float = self._expect("ready", 120)[1]

    def _expect(self, what: str, timeout: float) -> tuple[Any, ...]:
        replies = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            if not pipe.poll(timeout):
                raise RuntimeError(f"publisher {proc.name} did not report {what!r}")
            reply = pipe.recv()
            assert reply[0] == what, reply
            replies.append(reply)
        # The slowest publisher sets the pace.
        return max(replies, key=lambda r: r[1])

    def go(self, first: int, last: int, session: str) -> None:
        for pipe in self.pipes:
            pipe.send(("go", first, last, session))

    def wait_done(self, timeout: float) -> float:
        seconds: float = self._expect("done", timeout)[1]
        return seconds

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _wait_count(
    shared: _Shared,
    target: int,
    *,
    stall: float = STALL_SECONDS,
    cpu_of: dict[str, list[int]] | None = None,
) -> tuple[int, dict[str, float]]:
    """Wait until the receiver has counted ``target`` or stopped making progress.

    Returns the count and the CPU seconds of each group of ``cpu_of`` as of the last
    change, so the idle seconds spent noticing a stall are charged to nobody.
    """
    groups = cpu_of or {}
    last_value = -1
    last_change = time.monotonic()
    cpu: dict[str, float] = {}
    while True:
        value = shared.count.value
        now = time.monotonic()
        if value != last_value:
            last_value, last_change = value, now
            cpu = {name: _cpu_seconds(pids) for name, pids in groups.items()}
        if value >= target or now - last_change > stall:
            return value, cpu
        time.sleep(0.01)


def _wait_idle(shared: _Shared, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not shared.idle.value and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_committed(url: str, session: str, seq: int, devices: int, timeout: float) -> float:
    """Poll PostgreSQL until every device's row shows ``seq``; returns monotonic time."""

    async def poll() -> float:
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                count = await conn.fetchval(
                    "SELECT count(*) FROM devices WHERE session = $1 AND last_seq = $2",
                    session,
                    seq,
                )
                if count >= devices:
                    return time.monotonic()
                await asyncio.sleep(0.05)
            return float("nan")
        finally:
            await conn.close()

    return asyncio.run(poll())


def _broker_pid() -> list[int]:
    me = psutil.Process()
    return [c.pid for c in me.children() if c.name().startswith("mosquitto")]


def _run_receiver(
    kind: str,
    *,
    load: _Load,
    host: str,
    port: int,
    ids: list[str],
    password: str,
    receiver: SpawnProcess,
    shared: _Shared,
    count_offset: int,
    db_url: str | None,
) -> dict[str, Any]:
    """Drive one receiver: a warm-up round (seq 0), then the live and backlog phases."""
    session = f"{kind}-run"
    _say(f"{kind}: waiting for the receiver")
    deadline = time.monotonic() + 60
    while not shared.ready.value:
        if not receiver.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} receiver did not connect")
        time.sleep(0.02)
    # Retained heartbeats left by an earlier run are replayed on subscribe: let them in.
    replay_started = time.monotonic()
    _wait_count(shared, count_offset, stall=3.0)
    _wait_idle(shared)
    replay_seconds = time.monotonic() - replay_started if count_offset else 0.0
    base = shared.count.value
    _say(f"{kind}: connecting {load.devices} devices from {load.publishers} processes")
    fleet = _Fleet(host, port, ids, password, load.publishers)
    result: dict[str, Any] = {
        "publisher_connect_s": round(fleet.connect_seconds, 2),
        "retained_replay_s": round(replay_seconds, 2),
    }
    try:
        # Warm-up: first contact with every device (registration, first-seen transitions,
        # status topics) is not the steady state being measured.
        _say(f"{kind}: warm-up round")
        warm_started = time.monotonic()
        fleet.go(0, 0, session)
        fleet.wait_done(120)
        _wait_count(shared, base + load.devices)
        if db_url is not None:
            _wait_committed(db_url, session, 0, load.devices, 60)
        _wait_idle(shared)
        result["first_contact_s"] = round(time.monotonic() - warm_started, 2)
        time.sleep(1.0)
        phases = (
            ("live", 1, load.live_rounds),
            ("backlog", load.live_rounds + 1, load.live_rounds + load.backlog_rounds),
        )
        for phase, first, last in phases:
            if last < first:
                continue
            _say(f"{kind}: {phase} phase, {load.devices * (last - first + 1)} heartbeats")
            result[phase] = _timed_phase(
                phase,
                fleet=fleet,
                receiver=receiver,
                shared=shared,
                session=session,
                seqs=(first, last),
                devices=load.devices,
                db_url=db_url,
            )
    finally:
        fleet.stop()
    return result


def _timed_phase(
    phase: str,
    *,
    fleet: _Fleet,
    receiver: SpawnProcess,
    shared: _Shared,
    session: str,
    seqs: tuple[int, int],
    devices: int,
    db_url: str | None,
) -> dict[str, Any]:
    """One timed phase.

    ``live``: the receiver runs while the publishers publish. ``backlog``: the receiver
    is stopped (SIGSTOP) while they publish, so the broker queues everything, and the
    clock starts when it is resumed: its drain rate is the receiver's capacity without
    the load generator competing for the CPUs.
    """
    first, last = seqs
    total = devices * (last - first + 1)
    base = shared.count.value
    pid = receiver.pid or 0
    groups = {"receiver": [pid], "broker": _broker_pid(), "publishers": fleet.pids}
    backlog = phase == "backlog"
    if backlog:
        os.kill(pid, signal.SIGSTOP)
    try:
        cpu_before = {name: _cpu_seconds(pids) for name, pids in groups.items()}
        started = time.monotonic()
        fleet.go(first, last, session)
        publish_seconds = fleet.wait_done(300)
        if backlog:
            # Time starts when the receiver wakes up to a full queue.
            time.sleep(0.5)
            cpu_before = {name: _cpu_seconds(pids) for name, pids in groups.items()}
            started = time.monotonic()
    finally:
        if backlog:
            os.kill(pid, signal.SIGCONT)
    delivered, cpu_after = _wait_count(shared, base + total, cpu_of=groups)
    delivered -= base
    finished = shared.last.value
    cpu = {name: cpu_after[name] - cpu_before[name] for name in groups}
    elapsed = finished - started
    result: dict[str, Any] = {
        "messages": total,
        "delivered": delivered,
        "lost": total - delivered,
        "publish_seconds": round(publish_seconds, 3),
        "offered_per_s": round(total / publish_seconds),
        "receive_seconds": round(elapsed, 3),
        "received_per_s": round(delivered / elapsed),
        "receiver_cpu_s": round(cpu["receiver"], 2),
        "received_per_cpu_s": round(delivered / cpu["receiver"]) if cpu["receiver"] else None,
        "broker_cpu_s": round(cpu["broker"], 2),
        "publishers_cpu_s": round(cpu["publishers"], 2),
    }
    if db_url is not None:
        committed_at = _wait_committed(db_url, session, last, devices, 60)
        committed = committed_at - started
        result["committed_seconds"] = round(committed, 3)
        result["committed_per_s"] = round(total / committed) if committed == committed else None
    return result


def bench_throughput(
    load: _Load, *, profile: Path | None, broker_options: list[str]
) -> dict[str, Any]:
    from tests.harness.mosquitto import TestBroker  # noqa: PLC0415 - bench-only deps
    from tests.harness.postgres import obtain_server  # noqa: PLC0415

    _raise_fd_limit(load.devices + 4096)
    ids = _device_ids(load.devices)
    password = "bench-device-pw"
    for seq_session in ("bare-run", "direct-run", "monitor-run"):
        decode_heartbeat(PAYLOAD % (0, seq_session, time.time(), 1.0))  # payload is valid
    with (
        tempfile.TemporaryDirectory(prefix="clawbeat-bench-") as tmp,
        _bench_broker(
            TestBroker(Path(tmp) / "broker"),
            broker_options,
            queue_needed=2 * load.devices * max(load.live_rounds, load.backlog_rounds),
        ) as (broker, broker_changes),
        obtain_server() as server,
    ):
        broker.add_devices(ids, password)
        db_url = server.create_database("clawbeat_bench")
        asyncio.run(upgrade(db_url))
        monitor_url = (broker.host, broker.port, broker.monitor_user, broker.monitor_password)

        baselines: dict[str, dict[str, Any]] = {}
        for kind, target in (("bare", _bare_main), ("direct", _direct_main)):
            shared = _Shared.make()
            proc = MP.Process(target=target, args=(monitor_url, shared), name=f"bench-{kind}")
            proc.start()
            try:
                baselines[kind] = _run_receiver(
                    kind,
                    load=load,
                    host=broker.host,
                    port=broker.port,
                    ids=ids,
                    password=password,
                    receiver=proc,
                    shared=shared,
                    # A run before this one left one retained heartbeat per device.
                    count_offset=load.devices if baselines else 0,
                    db_url=None,
                )
            finally:
                proc.terminate()
                proc.join(10)

        shared = _Shared.make()
        parent, child = MP.Pipe()
        settings = {
            "mqtt_url": broker.url(),
            "database_url": db_url,
            "log_level": "WARNING",
            # The backlog phase stops the process for a while: keep the broker from
            # declaring it dead meanwhile.
            "mqtt_keepalive": 300,
            # The HTTP server runs as in production, on a port nobody else holds.
            "http_bind": f"127.0.0.1:{free_port()}",
        }
        mon = MP.Process(
            target=_monitor_main,
            args=(settings, shared, child, str(profile) if profile else None),
            name="bench-monitor",
        )
        mon.start()
        try:
            monitor_result = _run_receiver(
                "monitor",
                load=load,
                host=broker.host,
                port=broker.port,
                ids=ids,
                password=password,
                receiver=mon,
                shared=shared,
                # The bare run left one retained heartbeat per device.
                count_offset=load.devices,
                db_url=db_url,
            )
        finally:
            if mon.pid is not None and mon.is_alive():
                os.kill(mon.pid, signal.SIGTERM)
            counters = parent.recv() if parent.poll(30) else {}
            mon.join(30)
            if mon.is_alive():
                mon.kill()
        monitor_result["counters"] = counters
        pg_version = _pg_version(db_url)

    return {
        "load": asdict(load),
        "qos": 1,
        "retained": True,
        "broker_changes": broker_changes,
        "bare_aiomqtt": baselines["bare"],
        "direct_receive": baselines["direct"],
        "monitor": monitor_result,
        "ratio": _ratios(monitor_result, baselines["bare"]),
        "ratio_to_direct": _ratios(monitor_result, baselines["direct"]),
        "postgresql": pg_version,
    }


def _ratios(mon: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for phase in ("live", "backlog"):
        if phase in base and phase in mon:
            b, m = base[phase], mon[phase]
            ratios[phase] = {
                "received_per_s": round(m["received_per_s"] / b["received_per_s"], 3),
                "received_per_cpu_s": round(m["received_per_cpu_s"] / b["received_per_cpu_s"], 3)
                if m["received_per_cpu_s"] and b["received_per_cpu_s"]
                else None,
            }
    return ratios


@contextlib.contextmanager
def _bench_broker(
    broker: TestBroker, options: list[str], *, queue_needed: int
) -> Iterator[tuple[TestBroker, list[str]]]:
    """The harness broker: the project's mosquitto.conf, rendered for a temp directory.

    ``options`` (``--broker-option``, for experiments) replace or add lines. Should the
    shipped ``max_queued_messages`` be too small for the backlog phase (Mosquitto drops
    QoS 1 messages for a subscriber that far behind), it is raised, and the change is
    reported. Yields the broker and the lines changed.
    """
    conf = broker.process.conf_path
    lines = conf.read_text().splitlines()
    extra = list(options)
    queued = [int(line.split()[1]) for line in lines if line.split()[:1] == ["max_queued_messages"]]
    shipped = queued[-1] if queued else 1000  # Mosquitto's default
    if 0 < shipped < queue_needed and not any(o.startswith("max_queued_messages") for o in extra):
        extra.append(f"max_queued_messages {queue_needed}")
    keys = {line.split()[0] for line in extra}
    kept = [line for line in lines if not (line.split()[:1] and line.split()[0] in keys)]
    conf.write_text("\n".join([*kept, *extra]) + "\n")
    broker.start()
    try:
        yield broker, extra
    finally:
        broker.stop()


def _pg_version(url: str) -> str:
    async def fetch() -> str:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            version: str = await conn.fetchval("SHOW server_version")
            return version
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _raise_fd_limit(wanted: int) -> None:
    """Publishers hold one socket per device and the broker one per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        raise RuntimeError(f"open-files limit {hard} is too low for {wanted} sockets")


# ------------------------------------------------------------------ 2. memory


class _FlushedWriter(WriteBehind):
    """A write-behind whose every flush has just succeeded: nothing stays pending.

    Stands in for the steady state, where each flush window empties the buffers.
    """

    def put_device(self, row: DeviceRow) -> None:  # noqa: ARG002 - dropped on purpose
        self.stats.device_puts += 1

    def put_transition(self, row: TransitionRow) -> None:
        pass

    def add_rollup(
        self,
        device_id: str,
        minute: Any,
        *,
        count: int = 1,
        missed: int = 0,
        latency_ms: float | None = None,
        jitter_ms: float | None = None,
    ) -> None:
        pass


def _offline_service(
    classes: dict[str, Policy] | None = None, service_cls: type[MonitorService] = MonitorService
) -> MonitorService:
    """A MonitorService with its engine set up as ``run()`` would, without a broker."""
    settings = MonitorSettings(database_url="sqlite+aiosqlite://", log_level="WARNING")
    service = service_cls(settings)
    service.engine = LivenessEngine(
        classes=classes or {DEFAULT_CLASS: Policy()},
        default_interval=settings.default_interval,
        will_hold=settings.will_hold,
    )
    return service


def _memory_main(devices: int, out: Connection) -> None:
    """RSS per device of the monitor's state, heartbeats fed as ingest feeds them."""
    service = _offline_service()
    service.writer = _FlushedWriter(service.sessions)
    assert service.engine is not None
    now, wall = time.monotonic(), time.time()
    service.heartbeat(
        "warm-up", _heartbeat(0, "s0", 30.0, wall), retained=False, now=now, wall=wall
    )
    service._drain_dirty()
    before = _rss()
    started = time.perf_counter()
    for i in range(devices):
        # One session per device (16 hex chars, as device SDKs make them).
        hb = _heartbeat(0, f"{i:016x}", 30.0, wall)
        service.heartbeat(f"dev-{i:07d}", hb, retained=False, now=now + i * 1e-6, wall=wall)
        if i % 10_000 == 9_999:
            # One flush window: dirty devices handed to the (already flushed) writer.
            service._drain_dirty()
    service._drain_dirty()
    feed_seconds = time.perf_counter() - started
    steady = _rss()

    # The transient a flush window adds: rollups, latest metrics and device rows of the
    # devices that beat within it, held until the batch is written.
    window = min(devices, 100_000)
    service.writer = WriteBehind(service.sessions)
    for i in range(window):
        hb = _heartbeat(1, f"{i:016x}", 30.0, wall + 1)
        service.heartbeat(f"dev-{i:07d}", hb, retained=False, now=now + 1 + i * 1e-6, wall=wall + 1)
    service._drain_dirty()
    pending = _rss()
    out.send(
        {
            "devices": devices,
            "tracked": len(service.engine),
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(steady / 2**20, 1),
            "bytes_per_device": round((steady - before) / devices),
            "heartbeats_per_s_service_path": round(devices / feed_seconds),
            "pending_window_devices": window,
            "pending_bytes_per_device": round((pending - steady) / window),
        }
    )


def _engine_memory_main(devices: int, out: Connection) -> None:
    """The engine alone, for the breakdown: bench_engine's own measurement, reused."""
    from bench.bench_engine import rss_child  # noqa: PLC0415 - only in this child

    out.send(rss_child(devices))


def _in_child(target: Callable[..., None], *args: object, timeout: float = 300) -> Any:
    """Run ``target(*args, pipe)`` in a fresh process and return what it sends."""
    parent, child = MP.Pipe()
    proc = MP.Process(target=target, args=(*args, child))
    proc.start()
    deadline = time.monotonic() + timeout
    try:
        while not parent.poll(0.2):
            if not proc.is_alive():
                raise RuntimeError(f"{target.__name__}{args} exited with {proc.exitcode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.__name__}{args} produced nothing in {timeout}s")
        return parent.recv()
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def bench_memory(sizes: list[int], *, engine_breakdown: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"service": []}
    for size in sizes:
        _say(f"memory at {size} devices")
        result["service"].append(_in_child(_memory_main, size))
        if engine_breakdown:
            result.setdefault("engine_only", []).append(_in_child(_engine_memory_main, size))
    return result


# ------------------------------------------------------------------ 3. detection latency


class _TimedService(MonitorService):
    """Records, for each late transition, how long after its deadline it was handled."""

    deadlines: dict[str, float]
    latencies: list[float]
    expected: int
    all_detected: asyncio.Event

    def _apply(self, transitions: tuple[Transition, ...] | list[Transition]) -> None:
        super()._apply(transitions)
        handled = time.monotonic()
        for tr in transitions:
            if tr.new is State.LATE:
                self.latencies.append(handled - self.deadlines[tr.device_id])
        if len(self.latencies) >= self.expected:
            self.all_detected.set()


def _latency_main(devices: int, spread: float, out: Connection) -> None:
    grace = 1.0
    service = _offline_service({DEFAULT_CLASS: Policy(grace=grace)}, _TimedService)
    assert isinstance(service, _TimedService)
    service.deadlines = {}
    service.latencies = []
    service.all_detected = asyncio.Event()
    service.expected = devices
    # A link that is never connected: status payloads are built and queued as in
    # production, only the socket write is missing.
    service.link = MqttLink(
        LinkOptions(
            address=service.address,
            client_id="bench",
            keepalive=10,
            subscriptions=(),
            will_topic=service.topics.monitor_presence,
            will_payload=b"",
        ),
        on_message=lambda *_: None,
        on_connected=_noop_async,
        on_disconnected=lambda: None,
    )
    with tempfile.TemporaryDirectory(prefix="clawbeat-bench-log-") as tmp:
        # Transitions are logged at INFO in production: pay for it, into a file.
        handler = logging.FileHandler(Path(tmp) / "monitor.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log = logging.getLogger("clawbeat.monitor")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        engine = service.engine
        assert engine is not None
        wall = time.time()
        # Registration first (first contact is not what is measured), straight into the
        # engine: only the tick and transition handling below are timed.
        registering = time.monotonic()
        for i in range(devices):
            hb = _heartbeat(0, f"{i:016x}", 60.0, wall)
            engine.heartbeat(f"dev-{i:07d}", hb, time.monotonic(), wall)
        # Then one heartbeat each at t1, with intervals spread so that the late deadlines
        # fall uniformly over `spread` seconds, starting once this loop is surely done.
        t1 = time.monotonic()
        first = 2 * (t1 - registering) + 0.5
        for i in range(devices):
            interval = first + spread * i / devices
            device_id = f"dev-{i:07d}"
            engine.heartbeat(device_id, _heartbeat(1, f"{i:016x}", interval, wall), t1, wall)
            service.deadlines[device_id] = t1 + interval + grace
        engine.drain_dirty()
        if min(service.deadlines.values()) < time.monotonic():
            raise RuntimeError("feeding the devices took longer than the first deadline")

        async def run() -> None:
            ticker = asyncio.create_task(service._tick_loop())
            timeout = max(service.deadlines.values()) + 5 - time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(service.all_detected.wait(), timeout)
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

        asyncio.run(run())
        handler.close()
    lat = service.latencies
    out.send(
        {
            "devices": devices,
            "deadline_spread_s": spread,
            "tick_interval_s": service.settings.tick_interval,
            "detected": len(lat),
            "latency_s": {k: round(v, 4) for k, v in _percentiles(lat).items()},
        }
    )


async def _noop_async() -> None:
    return None


def bench_latency(devices: int, spread: float) -> dict[str, Any]:
    _say(f"detection latency at {devices} devices")
    result: dict[str, Any] = _in_child(_latency_main, devices, spread)
    return result


# ------------------------------------------------------------------ report


def _fmt(n: float | None) -> str:
    return "—" if n is None else f"{n:,.0f}"


def _meets(ok: bool) -> str:
    return "meets" if ok else "**misses**"


def _throughput_lines(t: dict[str, Any], m: dict[str, Any]) -> list[str]:
    bare, mon, load = t["bare_aiomqtt"], t["monitor"], t["load"]
    direct = t.get("direct_receive", {})
    lines = [
        "### Heartbeats per second, MQTT to committed PostgreSQL state",
        "",
        "| phase | receiver | delivered | received/s | committed state/s "
        "| receiver CPU s | messages per receiver CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in ("live", "backlog"):
        receivers = (
            ("bare aiomqtt loop", bare),
            ("clawbeat receive path only", direct),
            ("clawbeat monitor", mon),
        )
        for name, run in receivers:
            if phase not in run:
                continue
            r = run[phase]
            lines.append(
                f"| {phase} | {name} | {r['delivered']:,} of {r['messages']:,} "
                f"| {_fmt(r['received_per_s'])} | {_fmt(r.get('committed_per_s'))} "
                f"| {r['receiver_cpu_s']} | {_fmt(r['received_per_cpu_s'])} |"
            )
    lines.append("")
    for phase, ratio in t["ratio"].items():
        committed = mon[phase].get("committed_per_s") or 0
        lines.append(
            f"- **{phase}**: monitor / bare loop = **{ratio['received_per_s']}** in messages "
            f"per second, {ratio['received_per_cpu_s']} in messages per CPU second "
            f"(target ≥ 0.5: {_meets(ratio['received_per_s'] >= 0.5)}); "
            f"**{_fmt(committed)} heartbeats/s** to committed state "
            f"(target ≥ 10,000: {_meets(committed >= 10_000)})."
        )
    to_direct = t.get("ratio_to_direct", {})
    if to_direct:
        shares = ", ".join(
            f"{ratio['received_per_s']} {phase}" for phase, ratio in to_direct.items()
        )
        lines.append(
            f"- Monitor / its own receive path with nothing behind it: {shares} (messages per "
            "second): what is left of the receive path's capacity after validation, the "
            "engine, the write-behind and status publishing."
        )
    if "live" in bare and "backlog" in bare:
        live, backlog = bare["live"], bare["backlog"]
        if live["received_per_s"] < 0.8 * backlog["received_per_s"]:
            lines.append(
                f"- In the live phase the publishers ({live['publishers_cpu_s']} CPU s) and "
                f"the broker compete with the receiver for the {m['nproc']} CPUs: the bare "
                f"loop took in {_fmt(live['received_per_s'])}/s there against "
                f"{_fmt(backlog['received_per_s'])}/s draining a backlog alone. The "
                "**backlog** phase is the capacity comparison."
            )
    lines += [
        f"- Start-up with {load['devices']:,} devices: the monitor took "
        f"{mon['retained_replay_s']} s from subscribing to having taken in the replayed "
        "retained heartbeats, published their status topics and written their "
        f"transitions; first contact (one fresh heartbeat per device) took "
        f"{mon['first_contact_s']} s (bare loop: {bare['first_contact_s']} s).",
        "",
        "How: a Mosquitto started by the test harness from the repository's "
        "`mosquitto.conf` (loopback, no TLS"
        + (
            "; changed: " + ", ".join(f"`{o}`" for o in t["broker_changes"])
            if t["broker_changes"]
            else ", otherwise unchanged"
        )
        + ") and a throwaway PostgreSQL cluster with `fsync=off` (the bench measures the "
        "monitor, not the disk). "
        f"{load['devices']:,} device users; {load['publishers']} publisher processes "
        "(paho-mqtt without its network thread, one connection per device, because the "
        "ACL lets a device publish only its own topics) publish protocol heartbeats of "
        f"about 130 bytes, **QoS 1, retained**, as fast as they can. Each receiver "
        "subscribes to `clawbeat/v1/devices/+/heartbeat` at QoS 1 like the monitor. "
        "Untimed warm-up: one heartbeat per device (first contact). **live**: "
        f"{load['live_rounds']} heartbeats per device while the receiver runs; the clock "
        "starts when the publishers are told to go. **backlog**: "
        f"{load['backlog_rounds']} heartbeats per device published while the receiver "
        "process is stopped (SIGSTOP), the clock starting when it is resumed — its drain "
        "rate is its capacity without the load generator competing for the "
        f"{m['nproc']} CPUs. *received/s* ends at the last message the receiver took in "
        "(the monitor's ingest counter, sampled every 5 ms); *committed state/s* ends "
        "when a query on `devices` shows every device at its last `seq` and session. "
        "*messages per receiver CPU second* uses the receiver process's user + system "
        "CPU time. The bare loop is an aiomqtt client that only counts messages "
        "(`async for message in client.messages`); *clawbeat receive path only* is the "
        "monitor's `DirectClient` (messages handed over inside paho's read loop, the "
        "socket read in 64 KiB chunks: `monitor/direct_client.py`) that only counts; the "
        "monitor is `MonitorService` against PostgreSQL with default settings except "
        "`CLAWBEAT_MQTT_KEEPALIVE=300` (it is stopped for seconds in the backlog phase) "
        "and its HTTP port.",
        "",
    ]
    return lines


def _memory_lines(memory: dict[str, Any]) -> list[str]:
    engine = {e["devices"]: e for e in memory.get("engine_only", [])}
    header = "| devices | monitor state, bytes/device | RSS after |"
    rule = "|---|---|---|"
    if engine:
        header += " engine alone, bytes/device |"
        rule += "---|"
    lines = [
        "### Memory per tracked device",
        "",
        header + " extra while pending in a flush window, bytes/device |",
        rule + "---|",
    ]
    for svc in memory["service"]:
        row = (
            f"| {svc['devices']:,} | **{svc['bytes_per_device']:,}** | {svc['rss_after_mib']} MiB |"
        )
        if engine:
            eng = engine.get(svc["devices"])
            row += f" {eng['bytes_per_device'] if eng else '—'} |"
        lines.append(row + f" {svc['pending_bytes_per_device']:,} |")
    largest = memory["service"][-1]
    lines += [
        "",
        f"Target ≤ 1 KiB per device at 1M: {_meets(largest['bytes_per_device'] <= 1024)} "
        f"({largest['bytes_per_device']} bytes at {largest['devices']:,}).",
        "",
        "How: in a fresh process per size, N devices (ids like `dev-0000001`, a "
        "16-hex-digit session each, heartbeats with `fw` and two metrics) are fed through "
        "`MonitorService.heartbeat`, the call ingest makes for every valid heartbeat, "
        "handing dirty devices to the write-behind every 10,000 heartbeats; the "
        "write-behind stands for one whose flushes succeed, so nothing stays pending (the "
        "steady state). RSS (psutil, after `gc.collect()`) after minus before, divided by "
        "N: engine records, deadline heap, service dictionaries, interpreter overhead. "
        "*Extra while pending* is what a device costs while its rollup, latest metrics "
        "and device row wait for the next flush (measured on up to 100,000 devices); only "
        "devices that beat within one flush window (1 s) are pending at a time. The "
        "engine's own share is measured by `bench/bench_engine.py` (its section)"
        + ("" if engine else "; `--engine-breakdown` adds it here")
        + ".",
        "",
    ]
    return lines


def _latency_lines(lat: dict[str, Any]) -> list[str]:
    q = lat["latency_s"]
    rate = lat["devices"] / lat["deadline_spread_s"]
    return [
        "### Detection latency",
        "",
        f"{lat['devices']:,} devices, every one of them missing its heartbeat, late "
        f"deadlines spread evenly over {lat['deadline_spread_s']:g} s ({rate:,.0f} "
        f"deadlines/s: a mass outage, the worst case). Detected {lat['detected']:,}: "
        f"**p50 {q.get('p50', 0) * 1000:.0f} ms, p99 {q.get('p99', 0) * 1000:.0f} ms**, "
        f"max {q.get('max', 0) * 1000:.0f} ms (target p99 ≤ 1 s: "
        f"{_meets(q.get('p99', 99) <= 1.0)}).",
        "",
        "How: a `MonitorService` with its own tick loop "
        f"(`asyncio.sleep({lat['tick_interval_s']})`, then "
        "`engine.tick(time.monotonic(), time.time())` on the real clock) and real "
        "transition handling: transition rows to the write-behind, alerting, status "
        "payloads to the MQTT link's queue (not connected: no socket write), an INFO log "
        "line per transition into a file. Latency = monotonic time when the tick's "
        "transitions have all been handled minus the device's deadline (last heartbeat + "
        "interval + grace). No message load on the event loop meanwhile. With few devices "
        "failing at a time the latency is the tick interval plus the tick's cost; here it "
        "is bounded by the cost of handling each transition.",
        "",
    ]


def render_section(report: dict[str, Any]) -> str:
    m = report["machine"]
    pg = report.get("throughput", {}).get("postgresql")
    lines = [
        "## Monitor end to end (`bench/bench_monitor.py`)",
        "",
        f"Measured {report['date']} in one run of `python -m bench.bench_monitor` "
        f"({report['seconds']:.0f} s) on {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['memory_gib']} GiB RAM, Python {m['python']}, {m['mosquitto']}"
        + (f", PostgreSQL {pg}" if pg else "")
        + f", paho-mqtt {m['paho_mqtt']}, aiomqtt {m['aiomqtt']}. Broker, PostgreSQL, "
        "load generators and the process measured all share these CPUs.",
        "",
    ]
    if "throughput" in report:
        lines += _throughput_lines(report["throughput"], m)
    if "memory" in report:
        lines += _memory_lines(report["memory"])
    if "latency" in report:
        lines += _latency_lines(report["latency"])
    if report.get("profile"):
        lines += [
            "### Where the monitor's time goes",
            "",
            "cProfile of the monitor process over the throughput run, by own time (a "
            "profiled run: the profiler slows the monitor, so its figures above are low):",
            "",
            "```",
            report["profile"].rstrip(),
            "```",
            "",
        ]
    if report.get("errors"):
        lines += ["Failed parts of this run: " + "; ".join(report["errors"]), ""]
    return "\n".join(lines)


def write_doc(section: str) -> None:
    replace_section("bench_monitor", section)


def _profile_summary(path: Path, limit: int = 20) -> str:
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    lines = buffer.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


@contextlib.contextmanager
def _timer() -> Iterator[Callable[[], float]]:
    started = time.monotonic()
    yield lambda: time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_monitor", description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--live-rounds", type=int, default=20, help="heartbeats per device")
    parser.add_argument("--backlog-rounds", type=int, default=30, help="heartbeats per device")
    parser.add_argument(
        "--broker-option", action="append", default=[], help="extra mosquitto.conf line"
    )
    parser.add_argument("--memory-sizes", default="100000,1000000")
    parser.add_argument("--latency-devices", type=int, default=100_000)
    parser.add_argument("--latency-spread", type=float, default=10.0)
    parser.add_argument("--skip", action="append", default=[], help="throughput|memory|latency")
    parser.add_argument("--profile", action="store_true", help="cProfile the monitor process")
    parser.add_argument("--profile-out", type=Path, help="keep the monitor's cProfile data here")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/performance.md")
    parser.add_argument(
        "--engine-breakdown",
        action="store_true",
        help="also measure the engine alone (bench_engine's rss_child) per size",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.live_rounds, args.backlog_rounds = 500, 3, 3
        args.latency_devices = 5_000
        args.memory_sizes = "20000"
    report: dict[str, Any] = {
        "benchmark": "bench_monitor",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine(),
    }
    parts: dict[str, Callable[[], Any]] = {
        "throughput": lambda: _throughput_part(args, report),
        "memory": lambda: bench_memory(
            [int(size) for size in args.memory_sizes.split(",") if size],
            engine_breakdown=args.engine_breakdown,
        ),
        "latency": lambda: bench_latency(args.latency_devices, args.latency_spread),
    }
    errors: list[str] = []
    with _timer() as elapsed:
        for name, run in parts.items():
            if name in args.skip:
                continue
            try:
                report[name] = run()
            except Exception as exc:  # one failed part must not lose the others
                _say(f"{name} failed: {exc!r}")
                errors.append(f"{name}: {exc}")
        report["seconds"] = round(elapsed(), 1)
    if errors:
        report["errors"] = errors
    print(json.dumps(report, indent=2))
    if not args.no_doc and not args.quick:
        write_doc(render_section(report))
    return 1 if errors else 0


def _throughput_part(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clawbeat-prof-") as tmp:
        prof = args.profile_out or (Path(tmp) / "monitor.prof" if args.profile else None)
        result = bench_throughput(
            _Load(args.devices, args.publishers, args.live_rounds, args.backlog_rounds),
            profile=prof,
            broker_options=args.broker_option,
        )
        if prof is not None and prof.exists():
            report["profile"] = _profile_summary(prof)
    return result


if __name__ == "__main__":
    sys.exit(main())
