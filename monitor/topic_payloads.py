"""Payloads of the topics the monitor writes (status, fleet summary, monitor presence).

Pure functions: the service decides when to publish, these decide what.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from monitor.timefmt import iso


def _dump(obj: Mapping[str, Any]) -> bytes:
    # orjson: one status payload per transition, 100,000 of them in a mass outage.
    return orjson.dumps(obj)


def status_payload(
    *,
    device_id: str,
    state: str,
    since: float | None,
    last_seen: float | None,
    reason: str | None,
    session: str | None,
    interval: float,
    device_class: str,
) -> bytes:
    return _dump(
        {
            "device": device_id,
            "state": state,
            "since": iso(since),
            "last_seen": iso(last_seen),
            "reason": reason,
            "session": session,
            "interval": interval,
            "class": device_class,
        }
    )


def summary_payload(counts: Mapping[str, int], *, at: float) -> bytes:
    nonzero = {state: n for state, n in counts.items() if n}
    return _dump({"total": sum(nonzero.values()), "counts": nonzero, "at": iso(at)})


def monitor_presence_payload(
    state: str,
    *,
    since: float | None,
    instance: str,
    reason: str | None = None,
    replica: str | None = None,
) -> bytes:
    """The monitor's own presence: ``since`` is when it came online or went offline.

    ``None`` in the will: the broker publishes it when it finds the connection dead,
    a moment the monitor cannot know when it sets the will (at connect time).
    """
    body: dict[str, Any] = {"state": state, "since": iso(since), "instance": instance}
    if replica is not None:
        body["replica"] = replica
    if reason is not None:
        body["reason"] = reason
    return _dump(body)
