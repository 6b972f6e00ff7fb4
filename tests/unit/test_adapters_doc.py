"""docs/adapters.md is executable: its sources file parses, its example messages decode."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from google.protobuf import text_format

from monitor.sources.base import Adapter
from monitor.sources.config import parse_sources
from monitor.sources.esphome import ESPHomeAdapter
from monitor.sources.events import Beat, Offline, Online
from monitor.sources.shelly import ShellyAdapter
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.sources.sparkplug_b_pb2 import Payload
from monitor.sources.tasmota import TasmotaAdapter
from monitor.sources.topics import filter_matches
from monitor.sources.zigbee2mqtt import Zigbee2MqttAdapter

DOC = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = BLOCK.findall(DOC.read_text())
EXAMPLES = [body for lang, body in BLOCKS if lang == "text" and body.startswith("topic: ")]


def _adapters() -> list[Adapter]:
    generic = [body for lang, body in BLOCKS if lang == "toml"][-1]
    return [
        SparkplugAdapter("sp"),
        TasmotaAdapter("tas"),
        ESPHomeAdapter("esp"),
        Zigbee2MqttAdapter("z2m"),
        ShellyAdapter("shelly"),
        *parse_sources(tomllib.loads(generic)),
    ]


def test_every_sources_file_in_the_doc_parses() -> None:
    tables = [body for lang, body in BLOCKS if lang == "toml"]
    assert len(tables) >= 2
    for body in tables:
        assert parse_sources(tomllib.loads(body))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.split("\n", 1)[0][7:] for e in EXAMPLES])
def test_example_decodes_to_events(example: str) -> None:
    first, body = example.split("\n", 1)
    topic = first.removeprefix("topic: ")
    if topic.startswith("spBv1.0/"):
        payload = text_format.Parse(body, Payload()).SerializeToString()
    else:
        payload = body.strip().encode()
    claimed = [a for a in _adapters() if any(filter_matches(f, topic) for f in a.filters)]
    assert len(claimed) == 1, [a.name for a in claimed]
    decoded = claimed[0].decode(topic, payload, wall=1_800_000_000.0, view=lambda _d: None)
    assert isinstance(decoded, tuple), decoded
    assert decoded
    assert all(isinstance(e, Beat | Online | Offline) for e in decoded)


def test_the_doc_shows_every_kind() -> None:
    text = DOC.read_text()
    for kind in ("sparkplug", "tasmota", "esphome", "zigbee2mqtt", "shelly", "generic"):
        assert f'kind = "{kind}"' in text
