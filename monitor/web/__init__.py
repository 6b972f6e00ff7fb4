"""The monitor's web face: HTTP API, live dashboard, Prometheus ``/metrics``.

Served by uvicorn inside the monitor process (one more asyncio task next to ingest, the
tick loop and the writer), so the API reads the live engine directly: fleet counts and
device states are what the monitor believes this instant, not the last flush.

``app.py`` builds the FastAPI application; ``server.py`` binds and runs it;
``events.py`` fans transitions out to dashboards (server-sent events); ``metrics.py``
keeps the Prometheus registry; ``uptime.py`` and ``series.py`` are pure arithmetic over
the transitions table and the heartbeat rollups.
"""
