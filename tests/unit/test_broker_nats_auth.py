"""NATS permissions from a users file: what each user may do, and bad input refused clearly."""

from __future__ import annotations

import pytest

from broker.nats_auth import device_permissions, parse_password_lines, render_nats_authorization
from monitor.cluster.partitions import partition_of


def test_a_device_may_publish_only_its_own_mapped_subjects() -> None:
    p = partition_of("pump-7", 64)
    assert device_permissions("pump-7", partitions=64) == {
        "publish": {
            "allow": [
                f"clawbeat.v1.partitions.{p}.devices.pump-7.heartbeat",
                f"clawbeat.v1.partitions.{p}.devices.pump-7.presence",
            ]
        },
        "subscribe": {"allow": ["clawbeat.v1.devices.pump-7.config", "$MQTT.sub.>"]},
    }
    unmapped = device_permissions("pump-7")["publish"]
    assert unmapped == {"allow": ["clawbeat.v1.devices.pump-7.heartbeat",
                                  "clawbeat.v1.devices.pump-7.presence"]}  # fmt: skip


def test_service_users_are_recognised_by_name_and_devices_are_mqtt_only() -> None:
    text = render_nats_authorization({"monitor": "m", "ops": "o", "pump-7": "$2a$11$hash"})
    lines = {line.split('"user": "')[1].split('"')[0]: line for line in text.splitlines()
             if '"user"' in line}  # fmt: skip
    assert '"allowed_connection_types": ["MQTT"]' in lines["pump-7"]
    assert '"$2a$11$hash"' in lines["pump-7"]  # a bcrypt hash is kept as given
    assert '"deny": [">"]' in lines["ops"]
    assert "allowed_connection_types" not in lines["monitor"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("pump-7\n", "users:1: expected name:password"),
        ("# ok\n\npump 7:x\n", "users:3: invalid"),
        ("a:x\na:y\n", "users:2: user 'a' given twice"),
    ],
)
def test_a_bad_users_file_names_the_line(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_password_lines(text, source="users")


def test_a_root_with_a_dot_cannot_be_a_subject() -> None:
    with pytest.raises(ValueError, match="cannot be mapped"):
        render_nats_authorization({"a": "x"}, topic_root="acme.io/v1")
