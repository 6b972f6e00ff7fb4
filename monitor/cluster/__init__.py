"""Cluster mode: partitions of the fleet, their leases in PostgreSQL, and fencing.

See ``docs/cluster.md``. The pure parts (``partitions``, ``rebalance``) import nothing
above them; ``leases``, ``fencing`` and ``single_replica`` talk to the store.
"""
