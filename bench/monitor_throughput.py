"""Throughput part of the monitor benchmark: paho publishers, the receivers measured (bare
aiomqtt, the receive path alone, the whole monitor on PostgreSQL), and the live and
backlog phases that time them.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import resource
import selectors
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import paho.mqtt.client as paho
import psutil
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker.runner import free_port
from device_client.protocol import decode_heartbeat
from monitor.direct_client import DirectClient
from monitor.logging_setup import configure_logging
from monitor.parts import open_monitor
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.store.migrate import upgrade

if TYPE_CHECKING:
    from tests.harness.mosquitto import TestBroker

from bench.monitor_common import MP, PAYLOAD, STALL_SECONDS, TOPICS, cpu_seconds, device_ids, say


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
    config = MonitorSettings(**settings)
    services: list[MonitorService] = []  # the one run() builds, on its own loop

    async def sample(service: MonitorService) -> None:
        # Polls the ingest counter; 5 ms resolution is plenty for multi-second runs.
        seen = -1
        pending_peak = 0
        trace = bool(os.environ.get("BENCH_TRACE"))
        while True:
            asked = time.monotonic()
            await asyncio.sleep(0.005)
            if trace and time.monotonic() - asked > 0.25:
                say(f"monitor event loop stalled {time.monotonic() - asked:.2f} s")
            if service.link is not None and service.link.connected:
                shared.ready.value = 1
                shared.idle.value = int(
                    service.link.pending == 0 and service.writer.pending_transitions == 0
                )
            if service.link is not None and trace:
                pending = service.link.pending
                if pending > pending_peak or (pending == 0 and pending_peak):
                    say(f"monitor link pending {pending} (peak {pending_peak})")
                    pending_peak = 0 if pending == 0 else pending
            if service.ingest is not None:
                received = service.ingest.counts["received"]
                if received != seen:
                    seen = received
                    shared.count.value = received
                    shared.last.value = time.monotonic()

    async def run() -> int:
        service = MonitorService(config, await open_monitor(config))
        services.append(service)
        sampler = asyncio.create_task(sample(service))
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
    [service] = services
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
class Load:
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
            cpu = {name: cpu_seconds(pids) for name, pids in groups.items()}
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
    load: Load,
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
    say(f"{kind}: waiting for the receiver")
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
    say(f"{kind}: connecting {load.devices} devices from {load.publishers} processes")
    fleet = _Fleet(host, port, ids, password, load.publishers)
    result: dict[str, Any] = {
        "publisher_connect_s": round(fleet.connect_seconds, 2),
        "retained_replay_s": round(replay_seconds, 2),
    }
    try:
        # Warm-up: first contact with every device (registration, first-seen transitions,
        # status topics) is not the steady state being measured.
        say(f"{kind}: warm-up round")
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
            say(f"{kind}: {phase} phase, {load.devices * (last - first + 1)} heartbeats")
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
        cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        started = time.monotonic()
        fleet.go(first, last, session)
        publish_seconds = fleet.wait_done(300)
        if backlog:
            # Time starts when the receiver wakes up to a full queue.
            time.sleep(0.5)
            cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
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
    load: Load, *, profile: Path | None, broker_options: list[str]
) -> dict[str, Any]:
    from tests.harness.mosquitto import TestBroker  # noqa: PLC0415 - bench-only deps
    from tests.harness.postgres import obtain_server  # noqa: PLC0415

    _raise_fd_limit(load.devices + 4096)
    ids = device_ids(load.devices)
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
