"""NATS users and permissions equivalent to the Mosquitto ACL (broker/acl.py).

nats-server's MQTT gateway checks an MQTT client's publishes and subscriptions against
its user's NATS permissions, on the *subject* a topic becomes: topic levels turn into
subject tokens (``clawbeat/v1/devices/pump-7/heartbeat`` is
``clawbeat.v1.devices.pump-7.heartbeat``), and a filter ending in ``/#`` becomes two
subscriptions, ``a.>`` and ``a`` itself. Three things beyond the topics themselves:

* **Subject mappings apply first.** The gateway maps a publish's subject (and a will's,
  when it parses the CONNECT) before the permission check, so with the partition
  mapping (monitor/cluster/partitions.py) a device must be allowed the *mapped*
  subject, ``{root}.partitions.{p}.devices.{id}.heartbeat``. The generator knows ``P``
  and the id, so it allows exactly the device's own partition, not ``*``.
* **QoS 1 subscriptions need ``$MQTT.sub.>``.** Each one is a JetStream consumer whose
  deliver subject is ``$MQTT.sub.<nuid>``, subscribed to by the MQTT client itself
  (``processJSConsumer`` in server/mqtt.go). MQTT clients cannot subscribe to that
  prefix by topic (the gateway refuses it), and device users may only connect over
  MQTT (``allowed_connection_types``), so the grant reaches nothing else.
* Retained messages, sessions and QoS 1 storage are kept by the server's own internal
  JetStream client (``$MQTT.rmsgs``, ``$MQTT.sess.>``, ``$MQTT.msgs.>``): users need no
  permission on them.

A device's will is checked like any publish of its, so it too may only be its own
presence. Passwords are written as given: plain text, or a bcrypt hash (``$2a$...``,
for example from ``nats server passwd``), which nats-server recognises by its prefix;
keep the file mode 0600 either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from broker.acl import MONITOR_USER, OPS_USER
from device_client.protocol import DEFAULT_TOPIC_ROOT, validate_device_id, validate_topic_root
from monitor.cluster.partitions import check_partitions, nats_token, partition_of

# Every MQTT client with a QoS 1 subscription subscribes to its consumer's inbox here.
MQTT_DELIVERY = "$MQTT.sub.>"

# The kinds a device publishes (heartbeat, presence: its will is a presence too) and
# the one it reads; the same two kinds are what the partition mapping remaps.
DEVICE_PUBLISHES = ("heartbeat", "presence")
DEVICE_READS = "config"


def subject_root(topic_root: str) -> str:
    """The topic root as subject tokens; a ``.`` in it cannot be a subject token."""
    validate_topic_root(topic_root)
    if "." in topic_root:
        raise ValueError(f"topic root {topic_root!r}: a '.' cannot be mapped to a NATS subject")
    return topic_root.replace("/", ".")


def device_permissions(
    device_id: str, *, topic_root: str = DEFAULT_TOPIC_ROOT, partitions: int | None = None
) -> dict[str, object]:
    """One device's NATS permissions; with ``partitions``, its publishes as mapped."""
    root = subject_root(topic_root)
    token = nats_token(validate_device_id(device_id))
    if partitions is None:
        own = f"{root}.devices.{token}"
    else:
        own = f"{root}.partitions.{partition_of(device_id, partitions)}.devices.{token}"
    return {
        "publish": {"allow": [f"{own}.{kind}" for kind in DEVICE_PUBLISHES]},
        "subscribe": {"allow": [f"{root}.devices.{token}.{DEVICE_READS}", MQTT_DELIVERY]},
    }


def _tree(root: str, name: str) -> list[str]:
    """``{root}/{name}/#`` as subjects: the level itself and everything under it."""
    return [f"{root}.{name}", f"{root}.{name}.>"]


def monitor_permissions(
    *, topic_root: str = DEFAULT_TOPIC_ROOT, partitions: int | None = None
) -> dict[str, object]:
    """The monitor reads every device topic and writes what the Mosquitto ACL lets it."""
    root = subject_root(topic_root)
    device = [f"{root}.devices.*.{kind}" for kind in (*DEVICE_PUBLISHES, DEVICE_READS)]
    if partitions is not None:
        check_partitions(partitions)
        # It clears a forgotten device's retained heartbeat and presence: those publishes
        # are mapped, and checked, like a device's.
        device += [f"{root}.partitions.*.devices.*.{kind}" for kind in DEVICE_PUBLISHES]
    own = [*_tree(root, "status"), *_tree(root, "fleet"), *_tree(root, "monitor")]
    own.append(f"{root}.alerts")
    return {
        "publish": {"allow": [*device, *own]},
        "subscribe": {"allow": [*device, *own, MQTT_DELIVERY]},
    }


def ops_permissions(*, topic_root: str = DEFAULT_TOPIC_ROOT) -> dict[str, object]:
    """Operators and their tools read status, fleet, monitor presence and alerts."""
    root = subject_root(topic_root)
    reads = [*_tree(root, "status"), *_tree(root, "fleet"), *_tree(root, "monitor")]
    return {
        "publish": {"deny": [">"]},
        "subscribe": {"allow": [*reads, f"{root}.alerts", MQTT_DELIVERY]},
    }


def render_nats_authorization(
    passwords: Mapping[str, str],
    *,
    topic_root: str = DEFAULT_TOPIC_ROOT,
    partitions: int | None = None,
    monitor_user: str = MONITOR_USER,
    ops_user: str = OPS_USER,
) -> str:
    """The ``authorization { users = [...] }`` block for these users.

    ``passwords`` maps each user to its password (plain or bcrypt); ``monitor_user`` and
    ``ops_user`` get the service permissions, every other user is a device whose
    username is its device id. ``partitions``: the ``P`` of the deployment's subject
    mapping, None when the broker does not remap device topics.
    """
    subject_root(topic_root)
    lines = [
        f"# clawbeat users for topic root {topic_root!r}"
        + (f", partition mapping P={partitions}" if partitions is not None else "")
        + " (generated by `clawbeat broker nats-auth`).",
        "authorization {",
        "  users = [",
    ]
    for name in sorted(passwords):
        password = passwords[name]
        if name == monitor_user:
            perms = monitor_permissions(topic_root=topic_root, partitions=partitions)
            types = None  # the monitor may also read over core NATS
        elif name == ops_user:
            perms = ops_permissions(topic_root=topic_root)
            types = None
        else:
            perms = device_permissions(name, topic_root=topic_root, partitions=partitions)
            types = ["MQTT"]  # nothing but its MQTT topics, even with its own password
        entry: dict[str, object] = {"user": name, "password": password, "permissions": perms}
        if types is not None:
            entry["allowed_connection_types"] = types
        # JSON is valid NATS config: quoted strings keep '$', '>' and '*' literal.
        lines.append(f"    {json.dumps(entry)}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def parse_password_lines(text: str, *, source: str) -> dict[str, str]:
    """``name:password`` lines (blank lines and ``#`` comments skipped) as a mapping."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, password = line.partition(":")
        if not colon or not password:
            raise ValueError(f"{source}:{number}: expected name:password")
        try:
            validate_device_id(name)
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: {exc}") from None
        if name in users:
            raise ValueError(f"{source}:{number}: user {name!r} given twice")
        users[name] = password
    return users
