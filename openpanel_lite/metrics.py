"""Prometheus metrics (seed §5.1 names), one registry per app so tests can build many apps."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# The seed architecture's buckets for event processing time, in seconds.
PROCESSING_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 2, 5)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The process's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events_total = Counter(
            "openpanel_events_total",
            "Total number of events accepted",
            ["project_id", "event_name"],
            registry=self.registry,
        )
        self.processing_duration = Histogram(
            "openpanel_event_processing_duration_seconds",
            "Event processing duration",
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.queue_size = Gauge(
            "openpanel_queue_size", "Current queue size", ["queue_name"], registry=self.registry
        )
        self.events_dropped_total = Counter(
            "openpanel_events_dropped_total",
            "Events not stored, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.store_writes_total = Counter(
            "openpanel_store_writes_total", "Batches written to the event store", registry=self.registry
        )
        self.store_write_errors_total = Counter(
            "openpanel_store_write_errors_total",
            "Failed batch writes to the event store",
            registry=self.registry,
        )
        self.ingest_shed_total = Counter(
            "openpanel_ingest_shed_total",
            "Ingest requests answered 503 before their body was read, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.event_loop_lag = Gauge(
            "openpanel_event_loop_lag_seconds",
            "How late the event loop ran its last lag probe",
            registry=self.registry,
        )
        self.ingest_inflight = Gauge(
            "openpanel_ingest_requests",
            "Ingest requests being processed or waiting for a slot",
            ["state"],
            registry=self.registry,
        )
        self._queue_probes: dict[str, Callable[[], int]] = {}
        # labels() takes a lock and builds a tuple per call; this is on the /track path.
        self._event_counters: dict[tuple[str, str], Counter] = {}

    def count_event(self, project_id: str, event_name: str) -> None:
        """openpanel_events_total{project_id, event_name} += 1, with the labelled child cached."""
        key = (project_id, event_name)
        child = self._event_counters.get(key)
        if child is None:
            child = self.events_total.labels(project_id=project_id, event_name=event_name)
            self._event_counters[key] = child
        child.inc()

    def watch_queue(self, name: str, size: Callable[[], int]) -> None:
        """Report `size()` as openpanel_queue_size{queue_name=name} at every scrape."""
        self._queue_probes[name] = size
        self.queue_size.labels(queue_name=name).set_function(size)

    def queue_sizes(self) -> dict[str, int]:
        return {name: probe() for name, probe in self._queue_probes.items()}

    def render(self) -> bytes:
        return generate_latest(self.registry)
