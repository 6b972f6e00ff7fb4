"""A real 3-node nats-server cluster on loopback (MQTT and JetStream on every node).

Each node gets free ports (client, cluster route, MQTT, HTTP monitoring), its own
JetStream store and ``server_name``; all share one cluster name and list every route.
:meth:`NatsCluster.start` returns once the routes are up, JetStream has a meta leader
and an MQTT client can round-trip a QoS 1 message through every node (the MQTT gateway
creates its streams, replicated over the cluster, on first use, and refuses MQTT
clients until JetStream can). Nodes can be stopped or SIGKILLed one at a time.

A node may also run from a config file written elsewhere (``deploy/nats``), with only
its ports and paths substituted: :class:`NatsNode` takes the config text as it is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker.runner import free_port
from tests.harness.nats import _accepts, nats_server_binary

CLUSTER_NAME = "clawbeat_test"


@dataclass(frozen=True)
class NodePorts:
    client: int
    route: int
    mqtt: int
    http: int

    @classmethod
    def free(cls, taken: set[int]) -> NodePorts:
        ports = []
        for _ in range(4):
            port = free_port(exclude=taken)
            taken.add(port)
            ports.append(port)
        return cls(*ports)


@dataclass(frozen=True)
class MqttLogin:
    """Who the readiness check logs in as, and a topic it may publish and read."""

    username: str | None = None
    password: str | None = None
    topic: str = "clawbeat-test/probe"


@dataclass
class NatsNode:
    """One nats-server process running ``config`` from ``run_dir`` (its working directory)."""

    name: str
    run_dir: Path
    ports: NodePorts
    config: str
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf_path(self) -> Path:
        return self.run_dir / "nats.conf"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "nats.log"

    def launch(self) -> None:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server is not installed: `apt-get install nats-server`")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config)
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [binary, "-c", str(self.conf_path)],
            cwd=self.run_dir,
            stdout=log,
            stderr=log,
        )
        log.close()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(
                f"nats-server {self.name} exited ({self._proc.returncode}):\n{self.log_tail()}"
            )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no will is published, no session saved, routes drop unannounced."""
        if self._proc is None:
            return
        os.kill(self._proc.pid, signal.SIGKILL)
        self._proc.wait(10)
        self._proc = None

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def monitoring(self, path: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ports.http}/{path}"
        with urllib.request.urlopen(url, timeout=2) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def mqtt_url(self, username: str | None = None, password: str | None = None) -> str:
        login = ""
        if username:
            login = username + (f":{password}" if password is not None else "") + "@"
        return f"mqtt://{login}127.0.0.1:{self.ports.mqtt}"


def cluster_config(
    name: str,
    ports: NodePorts,
    peers: Sequence[NodePorts],
    *,
    mappings: Mapping[str, str],
    authorization: str | None,
) -> str:
    """A node's config: loopback listeners, JetStream, MQTT, routes to every peer."""
    routes = ", ".join(f"nats-route://127.0.0.1:{p.route}" for p in peers)
    lines = [
        f"server_name: {name}",
        f"listen: 127.0.0.1:{ports.client}",
        f"http: 127.0.0.1:{ports.http}",
        'jetstream { store_dir: "./jetstream" }',
        f"mqtt {{ listen: 127.0.0.1:{ports.mqtt} }}",
    ]
    if len(peers) > 1:  # one node alone runs standalone: a cluster of one waits for routes
        lines += [
            "cluster {",
            f"  name: {CLUSTER_NAME}",
            f"  listen: 127.0.0.1:{ports.route}",
            f"  routes: [{routes}]",
            "}",
        ]
    if mappings:
        lines.append("mappings {")
        # JSON strings are valid NATS config strings, quoting the mapping braces safely.
        lines += [f"  {json.dumps(src)}: {json.dumps(dst)}" for src, dst in mappings.items()]
        lines.append("}")
    if authorization:
        lines.append(authorization)
    return "\n".join(lines) + "\n"


class NatsCluster:
    """Nodes started together, judged ready together, stopped or killed one by one."""

    def __init__(self, nodes: Sequence[NatsNode], *, login: MqttLogin | None = None) -> None:
        self.nodes = list(nodes)
        self.login = login or MqttLogin()

    @classmethod
    def generated(
        cls,
        run_dir: Path,
        *,
        size: int = 3,
        mappings: Mapping[str, str] | None = None,
        authorization: str | None = None,
        login: MqttLogin | None = None,
    ) -> NatsCluster:
        taken: set[int] = set()
        all_ports = [NodePorts.free(taken) for _ in range(size)]
        nodes = [
            NatsNode(
                name=f"n{index}",
                run_dir=run_dir / f"n{index}",
                ports=ports,
                config=cluster_config(
                    f"n{index}",
                    ports,
                    all_ports,
                    mappings=mappings or {},
                    authorization=authorization,
                ),
            )
            for index, ports in enumerate(all_ports)
        ]
        return cls(nodes, login=login)

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 60.0, nodes: Sequence[NatsNode] | None = None) -> None:
        """Wait until routes, the JetStream meta leader and MQTT work on ``nodes`` (all)."""
        deadline = time.monotonic() + timeout
        nodes = list(nodes) if nodes is not None else [n for n in self.nodes if n.running()]
        peers = len([n for n in self.nodes if n.running()]) - 1
        for node in nodes:
            self._wait(node, deadline, "listening", lambda n: _accepts(n.ports.client))
            self._wait(node, deadline, "routed", lambda n: _routes(n) >= peers)
            if len(self.nodes) > 1:
                self._wait(node, deadline, "JetStream meta leader", _has_meta_leader)
            self._wait(node, deadline, "MQTT round trip", self._mqtt_round_trip)

    def _wait(self, node: NatsNode, deadline: float, what: str, check: Any) -> None:
        while True:
            node.check_alive()
            try:
                if check(node):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                tail = node.log_tail()
                raise RuntimeError(f"nats-server {node.name}: not {what} in time\n{tail}")
            time.sleep(0.2)

    def _mqtt_round_trip(self, node: NatsNode) -> bool:
        """Subscribe at QoS 1 and publish at QoS 1 through ``node``: the gateway works."""
        got = threading.Event()
        subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"probe-{node.name}-{time.monotonic_ns()}"
        )
        if self.login.username:
            client.username_pw_set(self.login.username, self.login.password)
        client.on_message = lambda *_a: got.set()
        client.on_subscribe = lambda *_a: subscribed.set()
        topic = f"{self.login.topic}/{node.name}"
        try:
            client.connect("127.0.0.1", node.ports.mqtt, 10)
            client.loop_start()
            client.subscribe(topic, qos=1)
            if not subscribed.wait(5):
                return False
            client.publish(topic, b"probe", qos=1)
            return got.wait(5)
        except OSError:
            return False
        finally:
            client.loop_stop()
            client.disconnect()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def mqtt_urls(self, username: str | None = None, password: str | None = None) -> list[str]:
        return [node.mqtt_url(username, password) for node in self.nodes]


def _routes(node: NatsNode) -> int:
    return int(node.monitoring("routez").get("num_routes", 0))


def _has_meta_leader(node: NatsNode) -> bool:
    meta = node.monitoring("jsz").get("meta_cluster") or {}
    return bool(meta.get("leader"))
