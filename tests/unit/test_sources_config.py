"""The sources file: every kind builds its adapter; every mistake is one clear line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monitor.settings import MonitorSettings
from monitor.sources.config import SourceConfigError, load_sources, parse_sources
from monitor.sources.generic import GenericAdapter
from monitor.sources.primary_host import host_options
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.sources.tasmota import TasmotaAdapter

GOOD = """
[[source]]
name = "plant"
kind = "sparkplug"
group = "plant"
interval = 60

[[source]]
name = "plugs"
kind = "tasmota"
interval = 300

[[source]]
name = "esp"
kind = "esphome"

[[source]]
name = "z"
kind = "zigbee2mqtt"
base = "zigbee2mqtt"
id_prefix = "z-"

[[source]]
name = "sh"
kind = "shelly"

[[source]]
name = "pumps"
kind = "generic"
topic = "home/+/alive"
id_segment = 1
seq = "n"
session = "boot"
ts = "t"
interval_path = "every"
"""


def test_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(GOOD)
    adapters = load_sources(path)
    assert [a.name for a in adapters] == ["plant", "plugs", "esp", "z", "sh", "pumps"]
    plant, plugs, *_, pumps = adapters
    assert isinstance(plant, SparkplugAdapter)
    assert plant.filters == ("spBv1.0/plant/#",)
    assert isinstance(plugs, TasmotaAdapter)
    assert plugs.interval == 300.0
    assert isinstance(pumps, GenericAdapter)
    assert (pumps.seq_path, pumps.session_path, pumps.ts_path) == ("n", "boot", "t")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[source]]\nname = "a"\nkind = "lora"', "source 'a': 'kind' must be one of"),
        ('[[source]]\nkind = "tasmota"', "source #1: 'name' must be a string"),
        ('[[source]]\nname = "a"\nkind = "tasmota"\ncolour = "red"', "unknown key 'colour'"),
        ('[[source]]\nname = "a"\nkind = "tasmota"\ninterval = "5"', "'interval' must be a num"),
        ('[[source]]\nname = "a"\nkind = "tasmota"\ninterval = 0', "between 0.1 and 86400"),
        ('[[source]]\nname = "a"\nkind = "generic"\ntopic = "x/+"', "needs 'id_segment'"),
        (
            '[[source]]\nname = "a"\nkind = "generic"\ntopic = "x/#/y"\nid_segment = 1',
            "'#' must be last",
        ),
        ('[[source]]\nname = "a"\nkind = "zigbee2mqtt"\nbase = "z/+"', "without wildcards"),
        ('[[source]]\nname = "a"\nkind = "tasmota"\nprefix = ""', "must not be empty"),
        ('[[source]]\nname = "a"\nkind = "sparkplug"\ngroup = "a/b"', "Sparkplug group id"),
        (
            '[[source]]\nname = "a"\nkind = "esphome"\n[[source]]\nname = "a"\nkind = "shelly"',
            "source 'a': name used twice",
        ),
        ('[sources]\nname = "a"', "unknown top-level key 'sources'"),
        ('[[source]]\nname = "a"\nkind = "esphome"\nbeats = 1', "'beats' must be true or false"),
    ],
)
def test_mistakes_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(SourceConfigError) as caught:
        parse_sources(tomllib.loads(text))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="cannot read sources file"):
        load_sources(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[source]\n")
    with pytest.raises(SourceConfigError, match="is not valid TOML"):
        load_sources(bad)


def test_a_primary_host_needs_a_connection_of_its_own() -> None:
    adapters = parse_sources(
        tomllib.loads('[[source]]\nname = "p"\nkind = "sparkplug"\nprimary_host_id = "cb"')
    )
    with pytest.raises(SourceConfigError, match="needs CLAWBEAT_SPARKPLUG_HOST_URL"):
        host_options(adapters, MonitorSettings(), client_id="monitor")
    settings = MonitorSettings(sparkplug_host_url="mqtt://host-user:pw@broker:1883")
    options = host_options(adapters, settings, client_id="monitor")
    assert options is not None
    assert (options.host_id, options.client_id, options.address.password) == (
        "cb",
        "host-user",
        "pw",
    )
    two = (
        '[[source]]\nname = "a"\nkind = "sparkplug"\nprimary_host_id = "x"\n'
        '[[source]]\nname = "b"\nkind = "sparkplug"\nprimary_host_id = "y"\n'
    )
    with pytest.raises(SourceConfigError, match="one primary_host_id per monitor"):
        parse_sources(tomllib.loads(two))
