"""``deploy/compose.cluster.yaml`` checked without Docker: what a typo would break at ``up``.

There is no Docker engine to run it here, so this runs ``deploy/setup-cluster.sh`` for
real in a copy of ``deploy/``, reads the compose file as compose does and checks each
thing compose would hand on: every ``CLAWBEAT_*`` variable a monitor is given is a real
setting and the settings validate; every file mounted or used as a secret exists; each
NATS node's configuration, with the users the script generated, passes
``nats-server -t``; no two services publish the same host port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.settings import MonitorSettings
from tests.harness.mosquitto import REPO
from tests.harness.nats import nats_server_binary

SHIPPED = REPO / "deploy"
# Settings a monitor may read from a file instead (`CLAWBEAT_<NAME>_FILE`).
FILE_SECRETS = {"mqtt_password", "database_url", "sparkplug_host_url"}
# Stands for the database URL the secret file holds: cluster mode needs PostgreSQL.
SECRET_DATABASE_URL = "postgresql://clawbeat:secret@postgres:5432/clawbeat"


class Compose:
    """The compose file of one prepared copy of ``deploy/``."""

    def __init__(self, deploy: Path) -> None:
        self.deploy = deploy
        self.spec: dict[str, Any] = yaml.safe_load((deploy / "compose.cluster.yaml").read_text())
        self.services: dict[str, dict[str, Any]] = self.spec["services"]

    def monitors(self) -> dict[str, dict[str, Any]]:
        return {n: s for n, s in self.services.items() if s.get("command") == ["monitor"]}

    def nats_nodes(self) -> dict[str, dict[str, Any]]:
        return {
            n: s for n, s in self.services.items() if str(s.get("image", "")).startswith("nats:")
        }

    def bind_mounts(self, service: dict[str, Any]) -> list[tuple[Path, str]]:
        """(host path, container path) of each bind mount."""
        return [
            ((self.deploy / source).resolve(), target)
            for source, target in _volumes(service)
            if source.startswith((".", "/"))
        ]

    def host_path(self, service: dict[str, Any], container_path: str) -> Path:
        for source, target in self.bind_mounts(service):
            if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
                return source / os.path.relpath(container_path, target)
        raise AssertionError(f"{container_path} is in no bind mount of the service")


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    pairs = (str(volume).split(":")[:2] for volume in service.get("volumes") or [])
    return [(source, target) for source, target in pairs]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping, so anchors can merge it"
    return {str(k): str(v) for k, v in env.items()}


def _setup(deploy: Path) -> None:
    result = subprocess.run(
        ["sh", str(deploy / "setup-cluster.sh")],
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "CLAWBEAT_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what the compose file uses, prepared by setup-cluster.sh (which writes
    next to itself)."""
    copy = tmp_path_factory.mktemp("compose-cluster") / "deploy"
    copy.mkdir()
    shutil.copy(SHIPPED / "compose.cluster.yaml", copy)
    shutil.copy(SHIPPED / "setup-cluster.sh", copy)
    shutil.copytree(SHIPPED / "nats", copy / "nats", ignore=shutil.ignore_patterns("auth.conf"))
    _setup(copy)
    return copy


@pytest.fixture
def compose(deploy: Path) -> Compose:
    return Compose(deploy)


def test_the_compose_file_runs_three_nats_nodes_postgres_and_three_replicas(
    compose: Compose,
) -> None:
    assert len(compose.nats_nodes()) == 3
    assert len(compose.monitors()) == 3
    for name in [*compose.nats_nodes(), *compose.monitors(), "postgres"]:
        assert "test" in compose.services[name]["healthcheck"], f"{name} has no healthcheck"
    for name, service in compose.services.items():
        for needed in service.get("depends_on") or {}:
            assert needed in compose.services, f"{name} waits for no such service {needed}"


def test_every_monitor_variable_is_a_setting_that_validates(
    compose: Compose, monkeypatch: pytest.MonkeyPatch
) -> None:
    replicas = set()
    for name, service in compose.monitors().items():
        env = _environment(service)
        for key in env:
            assert key.startswith("CLAWBEAT_"), f"{name}: {key} is not a clawbeat setting"
            field = key.removeprefix("CLAWBEAT_").lower()
            if field.endswith("_file") and field.removesuffix("_file") in FILE_SECRETS:
                continue
            assert field in MonitorSettings.model_fields, f"{name}: no setting {key}"
        # As the monitor reads them: from the environment, nothing else set.
        for key in list(os.environ):
            if key.startswith("CLAWBEAT_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            if not key.endswith("_FILE"):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("CLAWBEAT_DATABASE_URL", SECRET_DATABASE_URL)
        settings = MonitorSettings()
        assert settings.cluster, f"{name} would not join the cluster (CLAWBEAT_CLUSTER=true)"
        assert settings.partition_topics, f"{name} would subscribe to the whole fleet"
        replicas.add(settings.replica)
        # NATS does not bind client ids to users: each replica names its own.
        assert settings.mqtt_client_id == settings.replica
    assert len(replicas) == len(compose.monitors()), "replica names must differ"


def test_every_mounted_file_and_secret_exists(compose: Compose) -> None:
    declared = compose.spec["secrets"]
    for name, service in compose.services.items():
        for source, _target in compose.bind_mounts(service):
            assert source.exists(), f"{name} mounts {source}, which does not exist"
        for secret in service.get("secrets") or []:
            assert secret in declared, f"{name} uses an undeclared secret {secret}"
    for secret in declared.values():
        file = compose.deploy / secret["file"]
        assert file.is_file(), f"setup-cluster.sh did not make {file}"
        assert file.read_text().strip(), f"{file} is empty"


def test_setup_keeps_its_secrets_and_gives_nats_the_monitors_password(deploy: Path) -> None:
    secrets = {p.name: p.read_bytes() for p in (deploy / "secrets").iterdir()}
    _setup(deploy)  # again: nothing regenerated
    assert {p.name: p.read_bytes() for p in (deploy / "secrets").iterdir()} == secrets
    password = (deploy / "secrets" / "mqtt-monitor-password").read_text().strip()
    assert password in (deploy / "nats" / "auth.conf").read_text()
    assert (deploy / "secrets").stat().st_mode & 0o077 == 0
    assert (deploy / "secrets" / "nats-users").stat().st_mode & 0o077 == 0
    assert (deploy / "nats" / "auth.conf").stat().st_mode & 0o077 == 0


def test_each_nats_node_accepts_its_configuration(compose: Compose) -> None:
    binary = nats_server_binary()
    assert binary is not None, "nats-server is not installed: `apt-get install nats-server`"
    for name, service in compose.nats_nodes().items():
        command = [str(arg) for arg in service["command"]]
        at = command.index("--config")
        config = compose.host_path(service, command[at + 1])
        text = config.read_text()
        assert f"server_name: {name}" in text, f"{name} runs another node's file"
        result = subprocess.run(
            [binary, "-t", *command[:at], "--config", str(config), *command[at + 2 :]],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        # JetStream (MQTT sessions, retained messages) lives on a volume of the node's own.
        assert 'store_dir: "/var/lib/nats/jetstream"' in text
        assert "/var/lib/nats" in [t for s, t in _volumes(service) if not s.startswith(".")]


def test_no_two_services_publish_one_host_port(compose: Compose) -> None:
    # By port alone: one on 0.0.0.0 and one on 127.0.0.1 collide as well.
    taken: dict[str, str] = {}
    for name, service in compose.services.items():
        for port in service.get("ports") or []:
            published = str(port).split(":")[-2]
            clash = taken.get(published)
            assert clash is None, f"{name} and {clash} both publish port {published}"
            taken[published] = name
