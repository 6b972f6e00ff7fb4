"""docs/protocol.md is executable: its JSON examples decode, its shell examples work."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from device_client import protocol
from monitor.topic_payloads import monitor_presence_payload, status_payload, summary_payload
from tests.harness.mosquitto import TestBroker
from tests.mqtt_helpers import MqttProbe

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BLOCK = re.compile(r"^\s*```(\w+)\n(.*?)^\s*```", re.MULTILINE | re.DOTALL)


# What the monitor's own producers write, to compare the examples' fields with.
_STATUS = status_payload(
    device_id="d",
    state="online",
    since=0.0,
    last_seen=None,
    reason=None,
    session=None,
    interval=1.0,
    device_class="default",
)
_MONITOR_PRESENCE = {
    ("online", None): monitor_presence_payload("online", since=0.0, instance="m"),
    ("offline", "shutdown"): monitor_presence_payload(
        "offline", since=0.0, instance="m", reason="shutdown"
    ),
    ("offline", "connection-lost"): monitor_presence_payload(
        "offline", since=None, instance="m", reason="connection-lost"
    ),
}


def _blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(DOC.read_text()) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("json")) >= 8
    assert len(_blocks("sh")) >= 2


@pytest.mark.parametrize("body", _blocks("json"))
def test_json_examples_are_valid(body: str) -> None:
    obj = json.loads(body)
    raw = body.encode()
    if "seq" in obj:
        hb = protocol.decode_heartbeat(raw)
        assert protocol.decode_heartbeat(protocol.encode_heartbeat(hb)) == hb
    elif "device" in obj:
        # The fields the monitor writes, no more, no fewer.
        assert set(obj) == set(json.loads(_STATUS))
        assert obj["state"] in {
            "unknown",
            "online",
            "late",
            "stale",
            "offline",
            "lost",
            "maintenance",
        }
        protocol.validate_device_id(obj["device"])
    elif "instance" in obj:
        kind = (obj["state"], obj.get("reason"))
        expected = set(json.loads(_MONITOR_PRESENCE[kind]))
        if "replica" in obj:  # a cluster replica's presence
            expected |= set(
                json.loads(
                    monitor_presence_payload(obj["state"], since=0.0, instance="m", replica="r")
                )
            )
        assert set(obj) == expected
        assert (obj["since"] is None) == (kind == ("offline", "connection-lost"))
    elif "counts" in obj:
        assert set(obj) == set(json.loads(summary_payload({"online": 1}, at=0.0)))
    elif "state" in obj:
        presence = protocol.decode_presence(raw)
        assert protocol.decode_presence(protocol.encode_presence(presence)) == presence
    else:
        assert protocol.decode_config(raw).interval == obj["interval"]


def test_shell_examples_publish_valid_heartbeats_and_will(broker: TestBroker) -> None:
    password = broker.add_device("pump-7")
    probe = MqttProbe(broker.url())
    probe.connect()
    probe.subscribe("clawbeat/v1/devices/pump-7/#")
    env = {**os.environ, "HOST": broker.host, "PORT": str(broker.port), "PASSWORD": password}
    first, second = _blocks("sh")[:2]

    subprocess.run(["bash", "-euc", first], env=env, check=True, timeout=30)
    (msg,) = probe.wait_for(lambda m: m.topic.endswith("/heartbeat"))
    hb = protocol.decode_heartbeat(msg.payload)
    assert (hb.seq, hb.session, hb.fw) == (0, "shell-1", "sh-1.0")

    # The second example keeps a connection with a will; kill it mid-stream so the broker
    # publishes the will (the C client gets SIGKILL, no DISCONNECT is sent).
    proc = subprocess.Popen(["bash", "-euc", second], env=env, start_new_session=True)
    try:
        probe.wait_for(
            lambda m: m.topic.endswith("/heartbeat") and b"shell-2" in m.payload, timeout=10
        )
        os.killpg(proc.pid, 9)
    finally:
        proc.wait(10)
    wills = probe.wait_for(lambda m: m.topic.endswith("/presence"), timeout=90)
    presence = protocol.decode_presence(wills[0].payload)
    assert presence.session == "shell-2"
    assert presence.reason is protocol.OfflineReason.CONNECTION_LOST
    probe.close()
