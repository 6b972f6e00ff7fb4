"""Prometheus metrics for one monitor: its own registry, never the global one.

Most figures already exist in the process (the engine's counts, ingest's counters, the
writer's stats), so a collector reads them at scrape time instead of mirroring every
increment. Only what has no other home is recorded as it happens: detection latency
(tick loop) and write-behind flushes (the writer's ``on_flush`` hook).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.connect_failure import FailureKind
from monitor.liveness.clock import TOLERANCE as CLOCK_TOLERANCE
from monitor.liveness.outcomes import Outcome
from monitor.liveness.states import State, Transition
from monitor.metrics_cluster import ClusterCollector
from monitor.metrics_risk import RiskCollector
from monitor.sight import Blindness, Sight
from monitor.store.writer import FlushReport

if TYPE_CHECKING:
    from collections import Counter as CounterOf

    from monitor.alerts.shell import Alerting
    from monitor.cluster.keeper import LeaseKeeper
    from monitor.config_sync import ConfigSync
    from monitor.ingest import Ingest
    from monitor.live_events import EventHub
    from monitor.liveness.engine import LivenessEngine
    from monitor.mqtt_link import MqttLink
    from monitor.risk.scorer import RiskScorer
    from monitor.sources.ingest import SourceIngest
    from monitor.store.writer import WriteBehind

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
INVALID_KINDS: Final = ("bad_device_id", "bad_topic", "oversized", "invalid_payload")
_HEARTBEAT_OUTCOMES: Final = tuple(o.value for o in Outcome)

# Detection latency is bounded below by the tick interval (0.1 s by default).
_DETECTION_BUCKETS: Final = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_FLUSH_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS: Final = (1, 10, 100, 1_000, 5_000, 10_000, 100_000, 1_000_000)


class Observed(Protocol):
    """What the collector reads of the service at scrape time (the service is one)."""

    engine: LivenessEngine
    link: MqttLink
    ingest: Ingest
    sources: SourceIngest
    writer: WriteBehind
    alerting: Alerting
    risk: RiskScorer
    events: EventHub
    counts: CounterOf[str]
    config: ConfigSync
    sight: Sight
    keeper: LeaseKeeper | None


class ServiceMetrics:
    """The registry behind ``/metrics`` plus the two hooks the service calls."""

    def __init__(self, service: Observed) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.detection_latency = Histogram(
            "clawbeat_detection_latency_seconds",
            "Time from a device's deadline passing to the monitor emitting the transition",
            buckets=_DETECTION_BUCKETS,
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            "clawbeat_store_flush_seconds",
            "Duration of write-behind flushes (successful or not)",
            buckets=_FLUSH_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "clawbeat_store_batch_rows",
            "Rows written per write-behind flush, by kind (flushes that wrote any)",
            ["kind"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.flush_failures = Counter(
            "clawbeat_store_flush_failures",
            "Write-behind flushes that failed (database unavailable)",
            registry=self.registry,
        )
        self.registry.register(_LiveCollector(service))
        self.registry.register(RiskCollector(service.risk))
        self.registry.register(ClusterCollector(lambda: service.keeper, lambda: service.writer))

    def on_flush(self, report: FlushReport) -> None:
        self.flush_seconds.observe(report.seconds)
        if not report.ok:
            self.flush_failures.inc()
        for kind, rows in (
            ("devices", report.devices),
            ("transitions", report.transitions),
            ("rollups", report.rollups),
        ):
            if rows:
                self.batch_rows.labels(kind).observe(rows)

    def observe_detection(self, transitions: Sequence[Transition], wall_now: float) -> None:
        """Transitions from a tick: each is stamped with the wall time its deadline passed."""
        for tr in transitions:
            self.detection_latency.observe(max(0.0, wall_now - tr.at_wall))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, service: Observed) -> None:
        self._service = service

    def describe(self) -> Iterable[Metric]:
        # Collected at scrape time only; an empty description avoids a collect() at
        # registration, before the engine exists.
        return []

    def collect(self) -> Iterator[Metric]:
        service = self._service
        yield from self._devices(service)
        yield _gauge(
            "clawbeat_broker_connected",
            "1 while the monitor is connected to the broker",
            1.0 if service.link is not None and service.link.connected else 0.0,
        )
        yield from self._broker(service)
        engine = service.engine
        yield _gauge(
            "clawbeat_devices_clock_skewed",
            f"Devices whose clock is off the monitor's by more than {CLOCK_TOLERANCE:g} s "
            "(their offset is taken out of latency figures; per device in the API)",
            float(engine.clock_skewed) if engine is not None else 0.0,
        )
        yield _gauge(
            "clawbeat_warming_up",
            "1 while the monitor waits for devices after a start (no timeouts yet)",
            1.0 if engine is not None and engine.warming_up else 0.0,
        )
        yield from self._ingest(service)
        yield from self._sources(service)
        transitions = CounterMetricFamily(
            "clawbeat_transitions",
            "State transitions emitted, by new state",
            labels=["state"],
        )
        for state in State:
            transitions.add_metric([state.value], service.counts.get(f"transition_{state}", 0))
        yield transitions
        configs = CounterMetricFamily(
            "clawbeat_config_topics_reconciled",
            "Retained config topics corrected to what the database wants, by action",
            labels=["action"],
        )
        for action in ("cleared", "rewritten", "pushed"):
            configs.add_metric([action], service.config.counts.get(action, 0))
        yield configs
        yield from self._store(service)
        yield from self._alerts(service)
        yield _gauge(
            "clawbeat_event_stream_clients",
            "Dashboards connected to the live event stream",
            float(service.events.subscribers),
        )

    @staticmethod
    def _broker(service: Observed) -> Iterator[Metric]:
        link = service.link
        failures = CounterMetricFamily(
            "clawbeat_broker_connect_failures",
            "Failed attempts to connect to the broker, by reason",
            labels=["reason"],
        )
        for kind in FailureKind:
            failures.add_metric([kind.value], link.failures[kind] if link is not None else 0)
        yield failures
        yield from _LiveCollector._sight(service)
        down_since = link.down_since if link is not None else None
        yield _gauge(
            "clawbeat_broker_disconnected_seconds",
            "Seconds since the monitor last had a broker connection (0 while connected)",
            0.0 if down_since is None else max(0.0, time.time() - down_since),
        )

    @staticmethod
    def _sight(service: Observed) -> Iterator[Metric]:
        sight = service.sight
        yield _gauge(
            "clawbeat_blind",
            "1 while the monitor cannot see its devices (device timeouts suspended)",
            1.0 if sight is None or sight.blind else 0.0,
        )
        periods = CounterMetricFamily(
            "clawbeat_blind_periods",
            "Times the monitor went blind, by cause",
            labels=["reason"],
        )
        for reason in Blindness:
            periods.add_metric([reason.value], sight.blind_periods[reason] if sight else 0)
        yield periods
        yield CounterMetricFamily(
            "clawbeat_monitor_stalls",
            "Times the monitor's own clocks showed it had not run for longer than the "
            "link probe timeout (SIGSTOP, VM freeze, GC pause, CPU starvation)",
            value=sight.stalls if sight else 0,
        )
        if sight is not None and sight.last_rtt is not None:
            yield _gauge(
                "clawbeat_link_probe_rtt_seconds",
                "Round trip of the latest link probe through the broker",
                sight.last_rtt,
            )

    @staticmethod
    def _devices(service: Observed) -> Iterator[Metric]:
        devices = GaugeMetricFamily(
            "clawbeat_devices", "Devices tracked by the monitor, by state", labels=["state"]
        )
        counts = service.engine.counts() if service.engine is not None else {}
        for state in State:
            devices.add_metric([state.value], float(counts.get(state, 0)))
        yield devices

    @staticmethod
    def _sources(service: Observed) -> Iterator[Metric]:
        sources = service.sources
        if sources is None:
            return
        family = CounterMetricFamily(
            "clawbeat_source_messages",
            "Messages on declared sources' topics, by source and what became of them "
            "(received; heartbeat_/presence_ + engine outcome; the drop or ignore reason)",
            labels=["source", "result"],
        )
        for name, counts in sources.per_source.items():
            # Results are a fixed set of reasons and outcomes: bounded cardinality.
            for result, count in sorted(counts.items()):
                family.add_metric([name, result], count)
        yield family

    @staticmethod
    def _ingest(service: Observed) -> Iterator[Metric]:
        counts = service.ingest.counts if service.ingest is not None else {}
        yield CounterMetricFamily(
            "clawbeat_messages_received",
            "MQTT messages received on device topics",
            value=counts.get("received", 0),
        )
        outcomes = CounterMetricFamily(
            "clawbeat_heartbeats_received",
            "Valid heartbeats received, by what the engine made of them",
            labels=["outcome"],
        )
        for outcome in _HEARTBEAT_OUTCOMES:
            outcomes.add_metric([outcome], counts.get(f"heartbeat_{outcome}", 0))
        yield outcomes
        yield CounterMetricFamily(
            "clawbeat_duplicate_heartbeats",
            "Heartbeats whose seq was not newer than the last one of their session",
            value=counts.get(f"heartbeat_{Outcome.DUPLICATE.value}", 0),
        )
        presence = CounterMetricFamily(
            "clawbeat_presence_received",
            "Valid presence messages received, by outcome",
            labels=["outcome"],
        )
        for outcome in _HEARTBEAT_OUTCOMES:
            presence.add_metric([outcome], counts.get(f"presence_{outcome}", 0))
        yield presence
        invalid = CounterMetricFamily(
            "clawbeat_invalid_messages",
            "Messages dropped as invalid, by kind",
            labels=["kind"],
        )
        for kind in INVALID_KINDS:
            invalid.add_metric([kind], counts.get(kind, 0))
        yield invalid
        yield CounterMetricFamily(
            "clawbeat_message_handler_errors",
            "Messages dropped because handling them raised (a bug: see the error log)",
            value=service.link.handler_errors if service.link is not None else 0,
        )

    @staticmethod
    def _alerts(service: Observed) -> Iterator[Metric]:
        outbox = service.alerting.outbox.stats
        stats = service.alerting.stats
        yield CounterMetricFamily(
            "clawbeat_alerts_opened", "Device alerts opened", value=stats.alerts_opened
        )
        yield CounterMetricFamily(
            "clawbeat_alert_outages", "Outage alerts (many devices at once)", value=stats.outages
        )
        yield CounterMetricFamily(
            "clawbeat_notifications_sent", "Notifications delivered to a channel", value=outbox.sent
        )
        yield CounterMetricFamily(
            "clawbeat_notifications_failed",
            "Failed notification attempts (each retry counts)",
            value=outbox.failed,
        )
        yield CounterMetricFamily(
            "clawbeat_notifications_given_up",
            "Notifications abandoned after their last retry",
            value=outbox.gave_up,
        )

    @staticmethod
    def _store(service: Observed) -> Iterator[Metric]:
        writer = service.writer
        stats = writer.stats
        yield _gauge(
            "clawbeat_store_up",
            "1 unless the last write-behind flush failed",
            1.0 if writer.db_ok else 0.0,
        )
        yield _gauge(
            "clawbeat_store_lag_seconds",
            "Age of the oldest change not yet committed to the database",
            writer.lag_seconds,
        )
        pending = GaugeMetricFamily(
            "clawbeat_store_pending_rows", "Rows waiting to be written, by kind", labels=["kind"]
        )
        pending.add_metric(["devices"], float(writer.pending_devices))
        pending.add_metric(["transitions"], float(writer.pending_transitions))
        pending.add_metric(["rollups"], float(writer.pending_rollups))
        yield pending
        written = CounterMetricFamily(
            "clawbeat_store_rows_written", "Rows committed, by kind", labels=["kind"]
        )
        written.add_metric(["devices"], stats.devices_written)
        written.add_metric(["transitions"], stats.transitions_written)
        written.add_metric(["rollups"], stats.rollups_written)
        yield written
        dropped = CounterMetricFamily(
            "clawbeat_store_rows_dropped",
            "Rows dropped (buffer caps during an outage, or refused by the database)",
            labels=["kind"],
        )
        dropped.add_metric(["devices"], stats.device_rows_dropped)
        dropped.add_metric(["transitions"], stats.transitions_dropped)
        dropped.add_metric(["rollups"], stats.rollups_dropped)
        dropped.add_metric(["rejected"], stats.rows_rejected)
        yield dropped


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
