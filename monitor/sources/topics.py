"""MQTT topic-filter matching and device ids made from topic segments."""

from __future__ import annotations

import re
from typing import Final

from device_client.protocol import is_valid_device_id

_NOT_ID_CHAR: Final = re.compile(r"[^A-Za-z0-9._-]")


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (``+`` one level, ``#`` the rest)."""
    want = topic_filter.split("/")
    have = topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            # '#' also matches the parent level itself ('a/#' matches 'a'), but never a
            # topic starting with '$' at the first level (MQTT 4.7.2).
            return not (i == 0 and topic.startswith("$"))
        if i >= len(have):
            return False
        if level == "+":
            if i == 0 and have[0].startswith("$"):
                return False
            continue
        if level != have[i]:
            return False
    return len(want) == len(have)


def validate_filter(topic_filter: str) -> str:
    """Return a syntactically valid MQTT topic filter, else raise ValueError."""
    if not topic_filter or len(topic_filter.encode()) > 65535:
        raise ValueError(f"invalid topic filter {topic_filter!r}: empty or too long")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#" and i != len(levels) - 1:
            raise ValueError(f"invalid topic filter {topic_filter!r}: '#' must be last")
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise ValueError(
                f"invalid topic filter {topic_filter!r}: wildcards must fill a whole level"
            )
    return topic_filter


def make_device_id(prefix: str, *parts: str) -> str | None:
    """A clawbeat device id from a convention's names, or None if none can be made.

    Names are joined with '.', and characters outside the id alphabet become '_'
    (Zigbee2MQTT friendly names have spaces, Sparkplug ids may hold any UTF-8): a
    readable id beats refusing the device. Over-long results are refused, not cut, so
    two long names cannot silently become one device.
    """
    if not all(parts):
        return None
    device_id = prefix + ".".join(_NOT_ID_CHAR.sub("_", part) for part in parts)
    return device_id if is_valid_device_id(device_id) else None
