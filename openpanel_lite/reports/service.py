"""Reports: the one door to every dashboard number. Each method runs a report function over the
runtime's store through the shared QueryCache, so repeated widgets cost one store query per
(statement, data version), and /metrics shows the cache's hits and misses.

    reports = Reports.for_runtime(runtime)
    cards = reports.cards(project.id, OverviewQuery(period=period, filters=filters))
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from openpanel_lite.cache import CachedReader, QueryCache, Reader
from openpanel_lite.query import Metric
from openpanel_lite.reports import live, overview
from openpanel_lite.reports import top as top_tables

if TYPE_CHECKING:  # the dashboard's readers need not load the ingest stack
    from openpanel_lite.runtime import Runtime

_by_runtime: weakref.WeakKeyDictionary[Runtime, Reports] = weakref.WeakKeyDictionary()
_by_runtime_lock = threading.Lock()


class Reports:
    """Cached report functions for one store. Methods block: call them from a worker thread."""

    def __init__(self, store: Reader, version_of: Callable[[str], int], cache: QueryCache) -> None:
        self.cache = cache
        self.reader = CachedReader(store, cache, version_of)

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> Reports:
        """The runtime's Reports, created on first use (its cache metrics go on runtime.metrics)."""
        with _by_runtime_lock:
            reports = _by_runtime.get(runtime)
            if reports is None:
                settings = runtime.cfg.reports
                cache = QueryCache(
                    max_entries=settings.cache_max_entries,
                    ttl_s=settings.cache_ttl_s,
                    registry=runtime.metrics.registry,
                )
                # Looked up per call: the ingest side may be restarted under the same runtime.
                reports = cls(runtime.store, lambda p: runtime.ingest.writer.data_version(p), cache)
                _by_runtime[runtime] = reports
            return reports

    def cards(self, project_id: str, q: overview.OverviewQuery) -> overview.Cards:
        return overview.cards(self.reader, project_id, q)

    def series(self, project_id: str, q: overview.OverviewQuery, metric: Metric) -> overview.Series:
        return overview.series(self.reader, project_id, q, metric)

    def top(
        self,
        project_id: str,
        q: overview.OverviewQuery,
        table: str,
        limit: int = top_tables.DEFAULT_LIMIT,
        offset: int = 0,
    ) -> top_tables.TopTable:
        return top_tables.top(self.reader, project_id, q, table, limit, offset)

    def live_visitors(self, project_id: str, now: datetime | None = None) -> live.Live:
        return live.live_visitors(self.reader, project_id, now)
