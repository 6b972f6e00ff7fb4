"""clawbeat monitor: liveness engine, ingest, persistence and status topics."""
