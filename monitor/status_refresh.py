"""When a device's retained ``status/{id}`` is republished between its transitions.

A status is published on every transition. Between transitions a beating device changes
what its status shows in two ways, handled apart:

* Its session or effective interval (or, through ops, its class) changes: rare, and
  the shell republishes at once.
* Its ``last_seen`` moves with every heartbeat. Republishing per heartbeat would add
  one publish per heartbeat (a million devices at 30 s: 33,000 a second), so
  ``last_seen`` is refreshed on a grid instead: every ``period`` seconds, shifted per
  device by a hash of its id so the fleet's refreshes spread evenly over the period
  instead of arriving together. A heartbeat that crosses a line of its device's grid
  republishes the status. So a device is refreshed at most once per period, and the
  ``last_seen`` its status shows is never more than one period behind its last
  heartbeat (the first heartbeat after each line is shown).
* ``period`` is the configured minimum, or longer when the fleet is large, so that the
  refreshes of every tracked device fit the fleet-wide budget of ``rate`` publishes a
  second: ``max(minimum, devices / rate)``.

Pure: no clock reads, no MQTT; the shell calls :func:`last_seen_due` on its heartbeat
path (a hash Python has already cached for the id, and two divisions).
"""

from __future__ import annotations


def refresh_period(devices: int, *, minimum: float, rate: float) -> float:
    """Seconds between ``last_seen`` refreshes of one device, for a fleet of ``devices``."""
    return max(minimum, devices / rate)


def last_seen_due(device_id: str, previous: float, wall: float, period: float) -> bool:
    """Whether a heartbeat at ``wall`` after one at ``previous`` crosses a grid line.

    ``previous`` is the device's heartbeat before this one (UTC seconds). A wall clock
    that stepped back also counts as a crossing: one extra publish, never a missed one.
    """
    # From the hash's low 32 bits: ``hash % period`` would go through a float, which
    # keeps only the high bits of a 64-bit hash, and leave a handful of phases.
    phase = (hash(device_id) & 0xFFFFFFFF) * (period / 4_294_967_296.0)
    return (wall + phase) // period != (previous + phase) // period
