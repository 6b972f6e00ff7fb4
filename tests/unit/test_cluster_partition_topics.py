"""Partition topic filters and parsing: what a replica subscribes to and how ingest reads it."""

from __future__ import annotations

import pytest

from device_client.protocol import InvalidDeviceId, InvalidTopic, MessageKind, Topics
from monitor.cluster.partition_topics import filters, parse_partition_topic
from monitor.cluster.partitions import partition_of

TOPICS = Topics("clawbeat/v1")
P = 64


def test_filters_name_each_owned_partition_once_in_order() -> None:
    assert filters(TOPICS, [17, 3, 17]) == (
        "clawbeat/v1/partitions/3/devices/+/heartbeat",
        "clawbeat/v1/partitions/3/devices/+/presence",
        "clawbeat/v1/partitions/17/devices/+/heartbeat",
        "clawbeat/v1/partitions/17/devices/+/presence",
    )
    assert filters(TOPICS, []) == ()


def test_all_partitions_are_one_wildcard_filter_per_kind() -> None:
    assert filters(TOPICS, range(P), of=P) == (
        "clawbeat/v1/partitions/+/devices/+/heartbeat",
        "clawbeat/v1/partitions/+/devices/+/presence",
    )
    assert len(filters(TOPICS, range(P - 1), of=P)) == 2 * (P - 1)


@pytest.mark.parametrize("bad", [[-1], [True], [64]])
def test_filters_refuse_what_is_not_a_partition(bad: list[int]) -> None:
    with pytest.raises(ValueError, match="partition"):
        filters(TOPICS, bad, of=P)


def test_a_partition_topic_gives_the_device_and_kind() -> None:
    p = partition_of("pump-7", P)
    for kind in (MessageKind.HEARTBEAT, MessageKind.PRESENCE):
        topic = f"clawbeat/v1/partitions/{p}/devices/pump-7/{kind.value}"
        assert parse_partition_topic(TOPICS, topic, P) == ("pump-7", kind)
    # Config is not remapped: the plain device tree still parses.
    assert parse_partition_topic(TOPICS, "clawbeat/v1/devices/pump-7/config", P) == (
        "pump-7",
        MessageKind.CONFIG,
    )


@pytest.mark.parametrize(
    "topic",
    [
        "clawbeat/v1/partitions/44/devices/a/config",  # config never comes this way
        "clawbeat/v1/partitions/43/devices/a/heartbeat",  # 'a' is in partition 44
        "clawbeat/v1/partitions/x/devices/a/heartbeat",
        "clawbeat/v1/partitions/44/devices/a",
        "clawbeat/v1/partitions/44/things/a/heartbeat",
        "other/partitions/44/devices/a/heartbeat",
    ],
)
def test_anything_else_is_not_a_device_topic(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        parse_partition_topic(TOPICS, topic, P)


def test_a_hostile_id_is_refused_as_an_id() -> None:
    with pytest.raises(InvalidDeviceId):
        parse_partition_topic(TOPICS, "clawbeat/v1/partitions/1/devices/a b/heartbeat", P)
