"""The report cache: an in-process LRU with a TTL over store reads, keyed by the compiled SQL, its
parameters and the project's data version (bumped by the store writer after every write), so a cached
answer is never older than the last flush of that project's data.

The TTL only bounds how long entries of old versions (and of stores changed behind the writer's back,
e.g. a project deletion) linger; freshness comes from the version in the key.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from openpanel_lite.storage.dialects import Dialect

Rows = list[tuple[Any, ...]]
DEFAULT_MAX_ENTRIES = 1024
DEFAULT_TTL_S = 300.0


class Reader(Protocol):
    """The read half of an EventStore: what report functions need."""

    @property
    def dialect(self) -> Dialect: ...

    def fetch(self, sql: str, params: Mapping[str, object]) -> Rows: ...


class QueryCache:
    """Thread-safe LRU of row lists with a TTL, and its hit/miss counters.

    With a registry, exports openpanel_query_cache_{hits,misses}_total, _hit_ratio and _entries.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max(1, max_entries)
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Rows]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self._hits_total: Counter | None = None
        self._misses_total: Counter | None = None
        if registry is not None:
            self._register(registry)

    def _register(self, registry: CollectorRegistry) -> None:
        self._hits_total = Counter(
            "openpanel_query_cache_hits_total", "Report queries answered from the cache", registry=registry
        )
        self._misses_total = Counter(
            "openpanel_query_cache_misses_total", "Report queries sent to the event store", registry=registry
        )
        ratio = Gauge(
            "openpanel_query_cache_hit_ratio", "Cache hits / lookups since start", registry=registry
        )
        ratio.set_function(self.hit_ratio)
        entries = Gauge("openpanel_query_cache_entries", "Cached query results", registry=registry)
        entries.set_function(lambda: len(self))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def get(self, key: Hashable) -> Rows | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                self.hits += 1
                if self._hits_total is not None:
                    self._hits_total.inc()
                return entry[1]
            if entry is not None:
                del self._entries[key]  # expired
            self.misses += 1
            if self._misses_total is not None:
                self._misses_total.inc()
            return None

    def put(self, key: Hashable, rows: Rows) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_s, rows)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class CachedReader:
    """A Reader that answers repeated statements from a QueryCache.

    The key holds the project's data version, read from `version_of(params["project_id"])`;
    statements without a project_id parameter are never cached.
    """

    def __init__(self, store: Reader, cache: QueryCache, version_of: Callable[[str], int]) -> None:
        self._store = store
        self._cache = cache
        self._version_of = version_of

    @property
    def dialect(self) -> Dialect:
        return self._store.dialect

    def fetch(self, sql: str, params: Mapping[str, object]) -> Rows:
        project_id = params.get("project_id")
        if not isinstance(project_id, str):
            return self._store.fetch(sql, params)
        # NOTE: the version is read before the fetch. The writer bumps it only after its commit, so
        # rows fetched now are at least as new as this version: a key can hold newer data than its
        # version, never older.
        version = self._version_of(project_id)
        key = (sql, tuple(sorted(params.items())), version)
        rows = self._cache.get(key)
        if rows is None:
            rows = self._store.fetch(sql, params)
            self._cache.put(key, rows)
        # Callers get their own list, so nobody can edit a cached answer in place.
        return list(rows)
