"""Topic filters and device ids made from convention names."""

from __future__ import annotations

import pytest

from monitor.sources.topics import filter_matches, make_device_id, validate_filter


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("tele/+/LWT", "tele/plug/LWT", True),
        ("tele/+/LWT", "tele/plug/x/LWT", False),
        ("zigbee2mqtt/#", "zigbee2mqtt/a/b/c", True),
        ("zigbee2mqtt/#", "zigbee2mqtt", True),
        ("#", "$SYS/broker/uptime", False),
        ("+/status", "$SYS/status", False),
        ("a/b", "a/b/c", False),
        ("a/+", "a", False),
    ],
)
def test_filter_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert filter_matches(topic_filter, topic) is matches


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b+", "tele/#x"])
def test_invalid_filters_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid topic filter"):
        validate_filter(bad)


def test_device_ids() -> None:
    assert make_device_id("", "Living Room", "lamp") == "Living_Room.lamp"
    assert make_device_id("z-", "température") == "z-temp_rature"
    assert make_device_id("", "x" * 65) is None
    assert make_device_id("", "") is None
