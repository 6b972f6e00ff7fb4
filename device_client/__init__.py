"""clawbeat device SDK (protocol v1)."""
