"""cache.py: LRU + TTL, hit/miss counters and their Prometheus series, version-keyed reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from openpanel_lite.cache import CachedReader, QueryCache
from openpanel_lite.storage.dialects import DUCKDB, Dialect


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """Answers every statement with (sql, call number), counting calls."""

    dialect: Dialect = DUCKDB

    def __init__(self) -> None:
        self.calls = 0

    def fetch(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        self.calls += 1
        return [(sql, self.calls)]


def test_lru_evicts_the_least_recently_used() -> None:
    cache = QueryCache(max_entries=2)
    cache.put("a", [(1,)])
    cache.put("b", [(2,)])
    assert cache.get("a") == [(1,)]  # a is now the most recent
    cache.put("c", [(3,)])
    assert cache.get("b") is None
    assert cache.get("a") == [(1,)] and cache.get("c") == [(3,)]
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)


def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache = QueryCache(ttl_s=10, clock=clock)
    cache.put("k", [(1,)])
    clock.now += 9.9
    assert cache.get("k") == [(1,)]
    clock.now += 0.2
    assert cache.get("k") is None
    assert len(cache) == 0


def test_counters_and_ratio_are_exported() -> None:
    registry = CollectorRegistry()
    cache = QueryCache(registry=registry)
    assert cache.hit_ratio() == 0.0
    cache.put("k", [])
    cache.get("k")
    cache.get("k")
    cache.get("other")
    text = generate_latest(registry).decode()
    assert "openpanel_query_cache_hits_total 2.0" in text
    assert "openpanel_query_cache_misses_total 1.0" in text
    assert "openpanel_query_cache_hit_ratio 0.6666666666666666" in text
    assert "openpanel_query_cache_entries 1.0" in text


def test_reader_keys_on_sql_params_and_data_version() -> None:
    store = CountingStore()
    versions = {"p1": 0, "p2": 0}
    reader = CachedReader(store, QueryCache(), versions.__getitem__)
    assert reader.dialect is DUCKDB
    first = reader.fetch("SELECT 1", {"project_id": "p1", "x": 1})
    assert reader.fetch("SELECT 1", {"x": 1, "project_id": "p1"}) == first == [("SELECT 1", 1)]
    assert store.calls == 1
    assert reader.fetch("SELECT 1", {"project_id": "p1", "x": 2}) == [("SELECT 1", 2)]  # other params
    assert reader.fetch("SELECT 2", {"project_id": "p1", "x": 1}) == [("SELECT 2", 3)]  # other SQL
    versions["p2"] += 1  # another project's write does not invalidate p1
    assert reader.fetch("SELECT 1", {"project_id": "p1", "x": 1}) == first
    versions["p1"] += 1
    assert reader.fetch("SELECT 1", {"project_id": "p1", "x": 1}) == [("SELECT 1", 4)]
    # No project id: never cached.
    reader.fetch("SELECT 3", {})
    reader.fetch("SELECT 3", {})
    assert store.calls == 6


def test_callers_cannot_edit_a_cached_answer() -> None:
    reader = CachedReader(CountingStore(), QueryCache(), lambda project: 0)
    rows = reader.fetch("SELECT 1", {"project_id": "p"})
    rows.clear()
    assert reader.fetch("SELECT 1", {"project_id": "p"}) == [("SELECT 1", 1)]
