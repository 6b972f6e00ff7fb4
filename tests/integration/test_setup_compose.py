"""``deploy/setup-compose.sh``, run for real: what it puts in the broker's mount."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from broker.acl import MONITOR_USER
from broker.runner import BrokerProcess
from tests.harness.mosquitto import REPO, check_mosquitto_installed
from tests.mqtt_helpers import MqttProbe

SERVER_FILES = {"ca.crt", "server.crt", "server.key"}


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    """A copy of the checkout's deploy/ layout: the script writes next to itself."""
    missing = check_mosquitto_installed()
    if missing:
        pytest.fail(missing, pytrace=False)
    shutil.copy(REPO / "mosquitto.conf", tmp_path / "mosquitto.conf")
    (tmp_path / "deploy").mkdir()
    shutil.copy(REPO / "deploy" / "setup-compose.sh", tmp_path / "deploy" / "setup-compose.sh")
    return tmp_path / "deploy"


def _setup(deploy: Path) -> None:
    result = subprocess.run(
        ["sh", str(deploy / "setup-compose.sh")],
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "CLAWBEAT_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _private_keys(directory: Path) -> set[str]:
    return {
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and b"PRIVATE KEY" in p.read_bytes()
    }


def _assert_mount_holds_only_what_mosquitto_reads(deploy: Path) -> None:
    mount = deploy / "mosquitto" / "config"
    assert {p.name for p in (mount / "tls").iterdir()} == SERVER_FILES
    assert _private_keys(mount) == {"tls/server.key"}
    ca = deploy / "dev-ca"
    assert (ca / "ca.key").is_file()
    assert ca.stat().st_mode & 0o077 == 0


def _serves_tls_with(tls: Path, tmp_path: Path) -> None:
    """A real Mosquitto from the project's config, with exactly these TLS files."""
    broker = BrokerProcess(run_dir=tmp_path / "tls-broker", template=REPO / "mosquitto.conf")
    broker.certs.ca_cert.parent.mkdir(parents=True)
    for name in SERVER_FILES:
        shutil.copy(tls / name, broker.certs.ca_cert.parent / name)
    broker.prepare({MONITOR_USER: "monitor-pw"})
    with broker:
        probe = MqttProbe(broker.url(MONITOR_USER, "monitor-pw", tls=True), ca_file=tls / "ca.crt")
        try:
            assert not probe.connect().is_failure
        finally:
            probe.close()


def test_the_ca_key_stays_out_of_the_broker_mount(deploy: Path, tmp_path: Path) -> None:
    _setup(deploy)
    _assert_mount_holds_only_what_mosquitto_reads(deploy)
    tls = deploy / "mosquitto" / "config" / "tls"
    server_cert = (tls / "server.crt").read_bytes()
    _setup(deploy)  # again: nothing regenerated
    assert (tls / "server.crt").read_bytes() == server_cert
    _serves_tls_with(tls, tmp_path)


def test_a_mount_made_by_the_old_script_loses_its_ca_key(deploy: Path, tmp_path: Path) -> None:
    tls = deploy / "mosquitto" / "config" / "tls"
    # What earlier versions of the script did: the whole dev CA inside the mount.
    subprocess.run(
        [sys.executable, "-m", "monitor.cli", "broker", "dev-certs", "--dir", str(tls),
         "--hostname", "localhost", "--hostname", "mosquitto"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    ca_key, server_cert = (tls / "ca.key").read_bytes(), (tls / "server.crt").read_bytes()
    _setup(deploy)
    _assert_mount_holds_only_what_mosquitto_reads(deploy)
    # Moved, not lost: the same CA can still sign, and the broker keeps its certificate.
    assert (deploy / "dev-ca" / "ca.key").read_bytes() == ca_key
    assert (tls / "server.crt").read_bytes() == server_cert
    _serves_tls_with(tls, tmp_path)
