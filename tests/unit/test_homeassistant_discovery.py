"""Home Assistant discovery ids and the record of where discovery was published (pure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from device_client.protocol import Topics
from monitor.homeassistant.discovery import (
    Target,
    decode_targets,
    device_payloads,
    encode_targets,
    ha_id,
)

# https://www.home-assistant.io/integrations/mqtt/#discovery-topic: node and object ids.
HA_ID = re.compile(r"[a-zA-Z0-9_-]+")


def test_ids_are_valid_topic_levels_and_distinct_per_device() -> None:
    assert ha_id("pump-7") == "pump-7"  # already valid: kept as it is
    ids = {ha_id(d) for d in ("a.b", "a_b", "a-b", "A.b", "a..b", "a._b")}
    assert len(ids) == 6
    assert all(HA_ID.fullmatch(i) for i in ids)
    assert ha_id("a.b") == ha_id("a.b")  # stable: unique ids must not change per start


def test_topics_and_unique_ids_follow_the_topic_root() -> None:
    one, two = (
        Target.for_root("homeassistant", "clawbeat/v1"),
        Target.for_root("homeassistant", "site2"),
    )
    assert one.topic("sensor", "x.1").startswith("homeassistant/sensor/clawbeat_v1")
    assert HA_ID.fullmatch(one.node)
    assert HA_ID.fullmatch(two.node)
    ids = {
        json.loads(payload)["unique_id"]
        for target, root in ((one, "clawbeat/v1"), (two, "site2"))
        for _, payload in device_payloads(target, Topics(root), "x", fw=None, version="1")
    }
    assert len(ids) == 4


def test_record_round_trips_and_garbage_reads_as_nothing() -> None:
    targets = {Target("homeassistant", "clawbeat_v1"), Target("ha", "n")}
    assert decode_targets(encode_targets(targets)) == targets
    assert decode_targets(encode_targets(set())) == set()
    for garbage in (None, "", "{", "[1]", '{"prefix": "x"}', "[{}]"):
        assert decode_targets(garbage) == set()


def test_the_documented_example_is_what_is_published() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "homeassistant.md").read_text()
    example = re.search(r"```json\n(.*?)```", doc, re.DOTALL)
    assert example is not None
    target = Target.for_root("homeassistant", "clawbeat/v1")
    payloads = dict(device_payloads(target, Topics(), "pump-7", fw="2.4.1", version="0.1.0"))
    assert json.loads(payloads["homeassistant/sensor/clawbeat_v1/pump-7/config"]) == json.loads(
        example.group(1)
    )
    assert "homeassistant/binary_sensor/clawbeat_v1/pump-7/config" in doc
