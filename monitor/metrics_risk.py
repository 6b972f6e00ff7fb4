"""Prometheus figures of at-risk scoring (monitor/risk), read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.risk.scoring import RiskLevel, RiskMode

if TYPE_CHECKING:
    from monitor.risk.scorer import RiskScorer


class RiskCollector(Collector):
    def __init__(self, scorer: RiskScorer) -> None:
        self._scorer = scorer

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        scorer = self._scorer
        report = scorer.report
        devices = GaugeMetricFamily(
            "clawbeat_devices_at_risk",
            "Devices per risk level in the last scoring pass (only devices that are up)",
            labels=["level"],
        )
        counts = report.counts()
        for level in RiskLevel:
            devices.add_metric([level.value], counts[level])
        yield devices
        mode = GaugeMetricFamily(
            "clawbeat_risk_mode", "1 for the scoring mode in use (rules or model)", labels=["mode"]
        )
        for m in RiskMode:
            mode.add_metric([m.value], 1.0 if report.mode is m else 0.0)
        yield mode
        cpu = GaugeMetricFamily(
            "clawbeat_risk_scoring_cpu_seconds",
            "CPU seconds of the last scoring pass (worker thread, off the event loop)",
        )
        cpu.add_metric([], report.cpu_seconds)
        yield cpu
        yield CounterMetricFamily(
            "clawbeat_risk_scoring_passes", "Scoring passes since start", value=scorer.cycles
        )
