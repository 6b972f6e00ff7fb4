"""Sources declared in a TOML file (``CLAWBEAT_SOURCES_FILE``), one ``[[source]]`` each.

```toml
[[source]]
name = "plant"          # counters and logs use it; unique
kind = "sparkplug"      # sparkplug | tasmota | esphome | zigbee2mqtt | shelly | generic
interval = 60           # expected seconds between a device's messages
group = "plant"         # kind-specific keys: see docs/adapters.md
```

Every mistake is one clear line naming the source and the key: the monitor refuses to
start rather than silently watch less than it was told to.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from device_client.protocol import MAX_INTERVAL, MIN_INTERVAL
from monitor.errors import ConfigError
from monitor.sources.base import Adapter
from monitor.sources.esphome import ESPHomeAdapter
from monitor.sources.generic import GenericAdapter
from monitor.sources.shelly import ShellyAdapter
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.sources.tasmota import TasmotaAdapter
from monitor.sources.topics import validate_filter
from monitor.sources.zigbee2mqtt import Zigbee2MqttAdapter


class SourceConfigError(ConfigError):
    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(message if source is None else f"source {source!r}: {message}")


# Keys each kind accepts besides name/kind/interval/id_prefix, with their types.
_STR: Final = str
_KEYS: Final[dict[str, dict[str, type]]] = {
    "sparkplug": {"group": _STR, "primary_host_id": _STR, "request_rebirth": bool},
    "tasmota": {"prefix": _STR, "online_payload": _STR, "offline_payload": _STR},
    "esphome": {"root": _STR, "beats": bool},
    "zigbee2mqtt": {"base": _STR},
    "shelly": {"root": _STR},
    "generic": {
        "topic": _STR,
        "id_segment": int,
        "json": bool,
        "seq": _STR,
        "session": _STR,
        "ts": _STR,
        "interval_path": _STR,
        "presence_topic": _STR,
        "online_payload": _STR,
        "offline_payload": _STR,
    },
}
_COMMON: Final[dict[str, type]] = {"name": _STR, "kind": _STR, "interval": float, "id_prefix": _STR}
# Config keys whose adapter argument is named differently.
_RENAMED: Final = {"seq": "seq_path", "session": "session_path", "ts": "ts_path"}


def load_sources(path: Path) -> list[Adapter]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceConfigError(f"cannot read sources file {str(path)!r}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourceConfigError(f"sources file {str(path)!r} is not valid TOML: {exc}") from exc
    return parse_sources(data)


def parse_sources(data: Mapping[str, Any]) -> list[Adapter]:
    unknown = set(data) - {"source"}
    if unknown:
        raise SourceConfigError(f"unknown top-level key {sorted(unknown)[0]!r}: use [[source]]")
    entries = data.get("source", [])
    if not isinstance(entries, list):
        raise SourceConfigError("'source' must be an array of tables: write [[source]]")
    adapters: list[Adapter] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SourceConfigError(f"source #{index + 1} is not a table")
        adapter = _build(entry, index)
        if adapter.name in names:
            raise SourceConfigError("name used twice", source=adapter.name)
        names.add(adapter.name)
        adapters.append(adapter)
    hosts = {a.primary_host_id for a in adapters if isinstance(a, SparkplugAdapter)} - {None}
    if len(hosts) > 1:
        named = ", ".join(sorted(map(str, hosts)))
        raise SourceConfigError(f"one primary_host_id per monitor, not {len(hosts)}: {named}")
    return adapters


def _build(entry: dict[str, Any], index: int) -> Adapter:
    name = entry.get("name")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise SourceConfigError(f"source #{index + 1}: 'name' must be a string of 1-64 characters")
    kind = entry.get("kind")
    if kind not in _KEYS:
        raise SourceConfigError(f"'kind' must be one of {', '.join(_KEYS)}", source=name)
    allowed = {**_COMMON, **_KEYS[kind]}
    options: dict[str, Any] = {}
    for key, value in entry.items():
        want = allowed.get(key)
        if want is None:
            raise SourceConfigError(f"unknown key {key!r} for kind {kind!r}", source=name)
        options[key] = _typed(value, want, key, name)
    options.pop("kind")
    options.pop("name")
    if "interval" in options:
        interval = options["interval"]
        if not (math.isfinite(interval) and MIN_INTERVAL <= interval <= MAX_INTERVAL):
            raise SourceConfigError(
                f"'interval' must be between {MIN_INTERVAL} and {MAX_INTERVAL:g} seconds",
                source=name,
            )
    try:
        return _FACTORIES[kind](name, options)
    except (ValueError, TypeError) as exc:
        raise SourceConfigError(str(exc), source=name) from exc


def _typed(value: Any, want: type, key: str, source: str) -> Any:
    if want is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    names = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}
    raise SourceConfigError(f"{key!r} must be {names[want]}", source=source)


def _generic(name: str, options: dict[str, Any]) -> Adapter:
    for key in ("topic", "id_segment"):
        if key not in options:
            raise ValueError(f"kind 'generic' needs {key!r}")
    validate_filter(options["topic"])
    if "presence_topic" in options:
        validate_filter(options["presence_topic"])
    return GenericAdapter(name, **{_RENAMED.get(k, k): v for k, v in options.items()})


def _sparkplug(name: str, options: dict[str, Any]) -> Adapter:
    group = options.get("group", "+")
    if group != "+" and (not group or any(c in group for c in "+#/")):
        raise ValueError("'group' must be a Sparkplug group id (no '+', '#' or '/')")
    host = options.get("primary_host_id")
    if host is not None and (not host or any(c in host for c in "+#/")):
        raise ValueError("'primary_host_id' must be a Sparkplug host id (no '+', '#' or '/')")
    return SparkplugAdapter(name, **options)


def _prefixed(
    cls: Callable[..., Adapter], key: str, *, required: bool
) -> Callable[[str, dict[str, Any]], Adapter]:
    def build(name: str, options: dict[str, Any]) -> Adapter:
        value = options.get(key)
        if value == "" and required:
            raise ValueError(f"{key!r} must not be empty")
        if value:
            validate_filter(value)
            if "+" in value or "#" in value:
                raise ValueError(f"{key!r} must be a topic prefix without wildcards")
        return cls(name, **options)

    return build


_FACTORIES: Final[dict[str, Callable[[str, dict[str, Any]], Adapter]]] = {
    "sparkplug": _sparkplug,
    "tasmota": _prefixed(TasmotaAdapter, "prefix", required=True),
    "esphome": _prefixed(ESPHomeAdapter, "root", required=False),
    "zigbee2mqtt": _prefixed(Zigbee2MqttAdapter, "base", required=True),
    "shelly": _prefixed(ShellyAdapter, "root", required=False),
    "generic": _generic,
}
