"""Benchmarks, not tests: ``make bench`` runs every ``bench/bench_*.py``.

Figures and method: docs/performance.md.
"""
