"""The Mosquitto ACL lines the declared sources need, to append to the protocol's ACL.

The protocol v1 ACL (``clawbeat broker acl``) grants the monitor only its own topic tree.
Each source adds what the monitor must read (its topic filters), what it writes (Sparkplug
rebirth requests) and, for a Sparkplug primary host, the host user's STATE topic. The
devices' own write permissions depend on how each fleet logs in and are left to the
operator (docs/adapters.md shows examples).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.sources.base import Adapter
from monitor.sources.sparkplug import NAMESPACE, SparkplugAdapter, state_topic


def source_acl(
    adapters: Sequence[Adapter], *, monitor_user: str, host_user: str | None = None
) -> str:
    reads: dict[str, None] = {}
    writes: dict[str, None] = {}
    host_topics: dict[str, None] = {}
    for adapter in adapters:
        for topic_filter in adapter.filters:
            reads.setdefault(topic_filter, None)
        if isinstance(adapter, SparkplugAdapter):
            if adapter.request_rebirth:
                writes.setdefault(f"{NAMESPACE}/{adapter.group}/NCMD/+", None)
            if adapter.primary_host_id is not None:
                host_topics.setdefault(state_topic(adapter.primary_host_id), None)
    lines = [f"# Sources: {', '.join(a.name for a in adapters) or 'none'}", f"user {monitor_user}"]
    lines += [f"topic read {t}" for t in reads]
    lines += [f"topic write {t}" for t in writes]
    if host_topics:
        lines += ["", f"user {host_user or 'clawbeat-host'}"]
        lines += [f"topic readwrite {t}" for t in host_topics]
    return "\n".join(lines) + "\n"
