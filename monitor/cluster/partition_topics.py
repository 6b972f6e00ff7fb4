"""Partition topics: ``{root}/partitions/{p}/devices/{id}/{heartbeat|presence}``.

A broker that routes by partition (NATS's subject mapping, deploy/nats/partitions.conf)
delivers a device's heartbeat, presence and will there instead of under
``{root}/devices/{id}/...``; its config topic stays where it was. A replica subscribes
to the partitions it acts for (:func:`filters`, called again whenever ownership
changes) and ingest reads the device id from this shape (:func:`parse_partition_topic`).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from device_client.protocol import InvalidTopic, MessageKind, Topics, validate_device_id
from monitor.cluster.partitions import check_partitions, partition_of

# What the mapping moves; config (and everything the monitor publishes) is not remapped.
REMAPPED: Final = (MessageKind.HEARTBEAT, MessageKind.PRESENCE)
_KINDS: Final = {kind.value: kind for kind in REMAPPED}


def filters(topics: Topics, partitions: Iterable[int], *, of: int | None = None) -> tuple[str, ...]:
    """The heartbeat and presence filters for ``partitions``, in partition order.

    ``of``: the deployment's partition count; when ``partitions`` is all of them, one
    ``+`` filter per kind stands for them all (one broker subscription, not 2 x P).
    """
    owned = sorted(set(partitions))
    for p in owned:
        if isinstance(p, bool) or not isinstance(p, int) or p < 0:
            raise ValueError(f"not a partition number: {p!r}")
    if of is not None:
        check_partitions(of)
        if owned and owned[-1] >= of:
            raise ValueError(f"partition {owned[-1]} is not below the partition count {of}")
        if len(owned) == of:
            owned_tokens: list[str] = ["+"]
        else:
            owned_tokens = [str(p) for p in owned]
    else:
        owned_tokens = [str(p) for p in owned]
    return tuple(
        f"{topics.root}/partitions/{token}/devices/+/{kind.value}"
        for token in owned_tokens
        for kind in REMAPPED
    )


def parse_partition_topic(topics: Topics, topic: str, partitions: int) -> tuple[str, MessageKind]:
    """Split a partition topic into ``(device id, kind)``.

    Any other topic goes to :meth:`Topics.parse_device_topic` (config topics, and
    device topics a broker did not remap). A partition topic whose number is not the
    device's own partition is refused: a client writing it directly (a broker without
    the generated permissions) must not make a replica judge a device it does not own.

    Raises:
        InvalidTopic: not a device topic of either shape, or the wrong partition.
        InvalidDeviceId: a hostile id segment.
    """
    prefix = f"{topics.root}/partitions/"
    if not topic.startswith(prefix):
        return topics.parse_device_topic(topic)
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 4 or parts[1] != "devices" or not parts[0].isdigit():
        raise InvalidTopic(f"topic {topic!r} is not {prefix}{{p}}/devices/{{id}}/{{kind}}")
    number, _, device_id, kind = parts
    validate_device_id(device_id)
    message_kind = _KINDS.get(kind)
    if message_kind is None:
        raise InvalidTopic(f"message kind {kind!r} is not routed by partition in {topic!r}")
    if int(number) != partition_of(device_id, partitions):
        raise InvalidTopic(f"device {device_id!r} does not belong to partition {number}")
    return device_id, message_kind
