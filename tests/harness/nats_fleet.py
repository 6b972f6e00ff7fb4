"""A 3-node NATS cluster with clawbeat's users, as the monitor harness sees a broker.

The cluster runs the permissions ``clawbeat broker nats-auth`` generates (monitor, ops,
and the devices given), optionally the partition mapping. :class:`NatsBroker` answers
``url(user)`` like the Mosquitto harness (one node's URL, for probes and watchers) and
``urls(user)``: every node, comma-separated, as a monitor or device is configured.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from broker.acl import MONITOR_USER, OPS_USER
from monitor.cluster.partitions import nats_mapping
from tests.harness.nats_cluster import MqttLogin, NatsCluster, NatsNode

ROOT = "clawbeat/v1"


class NatsBroker:
    """A running cluster plus the passwords of its users."""

    def __init__(
        self,
        run_dir: Path,
        devices: Iterable[str],
        *,
        device_password: str,
        partitions: int | None = None,
        size: int = 3,
    ) -> None:
        self.monitor_user = MONITOR_USER
        self.ops_user = OPS_USER
        self.passwords = {
            MONITOR_USER: secrets.token_urlsafe(12),
            OPS_USER: secrets.token_urlsafe(12),
            **dict.fromkeys(devices, device_password),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        users = run_dir / "users"
        users.write_text("".join(f"{name}:{pw}\n" for name, pw in self.passwords.items()))
        command = [sys.executable, "-m", "monitor.cli", "broker", "nats-auth"]
        command += ["--users", str(users), "--root", ROOT]
        mappings: dict[str, str] = {}
        if partitions is not None:
            command += ["--partitions", str(partitions)]
            mappings = dict(
                nats_mapping(topic_root=ROOT, partitions=partitions, kind=kind)
                for kind in ("heartbeat", "presence")
            )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"clawbeat broker nats-auth failed: {result.stderr}")
        self.cluster = NatsCluster.generated(
            run_dir / "nats",
            size=size,
            mappings=mappings,
            authorization=result.stdout,
            login=MqttLogin(MONITOR_USER, self.passwords[MONITOR_USER], f"{ROOT}/monitor/probe"),
        )
        # The node url() answers with: probes and watchers stay on one node the test
        # keeps alive.
        self.home = 0

    def start(self) -> None:
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()

    @property
    def nodes(self) -> list[NatsNode]:
        return self.cluster.nodes

    def url(
        self, user: str | None = None, password: str | None = None, *, tls: bool = False
    ) -> str:
        if tls:
            raise ValueError("the test cluster has no TLS listener")
        user = user or self.monitor_user
        return self.nodes[self.home].mqtt_url(user, password or self.passwords[user])

    def urls(self, user: str | None = None, *, first: int = 0) -> str:
        """Every node's URL, comma-separated, starting at node ``first``."""
        order = self.nodes[first:] + self.nodes[:first]
        if user is None:
            return ",".join(node.mqtt_url() for node in order)
        return ",".join(node.mqtt_url(user, self.passwords[user]) for node in order)

    def connected(self, node: NatsNode) -> set[str]:
        """The users with a connection to ``node`` now."""
        connz = node.monitoring("connz?auth=true&limit=4096")
        return {conn.get("authorized_user", "") for conn in connz.get("connections") or []}
