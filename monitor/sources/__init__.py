"""Source adapters: watch fleets that follow other conventions than protocol v1.

Each adapter (one module per convention) turns a message — topic, payload, receive time —
into heartbeat and presence events; :mod:`monitor.sources.resolve` fills in sessions and
sequence numbers where the convention has none; :mod:`monitor.sources.ingest` feeds the
result to the same liveness engine protocol v1 devices go through. What each adapter can
and cannot guarantee is in ``docs/adapters.md``.
"""
