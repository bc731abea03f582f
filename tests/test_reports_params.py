"""reports/params.py (URL -> OverviewQuery) and the compiler's forced grain, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from litestar.datastructures import MultiDict

from openpanel_lite.dates import RangeName, resolve_period
from openpanel_lite.query import (
    DateRange,
    Dimension,
    Filter,
    FilterOperator,
    Grain,
    Metric,
    ParamError,
    Property,
    Query,
    QueryError,
)
from openpanel_lite.reports.params import parse_filters, parse_int, parse_metric, parse_overview, to_params
from openpanel_lite.storage.dialects import DUCKDB
from openpanel_lite.storage.sql import choose_grain, compile_query

NOW = datetime(2025, 3, 12, 1, 30, tzinfo=UTC)


def test_parse_overview_defaults_and_last_value_wins() -> None:
    q = parse_overview({}, "UTC", NOW)
    assert q.period == resolve_period(RangeName.DAYS_30, "UTC", NOW) and q.filters == ()
    q = parse_overview({"range": ["7d", "today"], "interval": ["day"]}, "Asia/Kolkata", NOW)
    assert q.period == resolve_period(RangeName.TODAY, "Asia/Kolkata", NOW, interval=q.period.interval)
    assert q.period.interval == "day"


def test_to_params_keeps_repeated_values() -> None:
    raw = MultiDict([("f", "country,is,SE"), ("range", "7d"), ("f", "os,is,iOS")])
    assert to_params(raw) == {"f": ["country,is,SE", "os,is,iOS"], "range": ["7d"]}
    assert len(parse_overview(to_params(raw), "UTC", NOW).filters) == 2


def test_filters_from_f_and_json() -> None:
    params = {
        "f": ["country,is,SE", "path,startsWith,/a,b", "referrerName,isNull", "properties.plan,isNot,pro"],
        "filters": ['[{"name": "browser", "operator": "contains", "value": ["fire", 1]},'
                    ' {"name": "os", "operator": "is", "value": "iOS"}]'],
    }  # fmt: skip
    assert parse_filters(params) == (
        Filter(Dimension.COUNTRY, FilterOperator.IS, ("SE",)),
        Filter(Dimension.PATH, FilterOperator.STARTS_WITH, ("/a,b",)),
        Filter(Dimension.REFERRER_NAME, FilterOperator.IS_NULL, ()),
        Filter(Property("plan"), FilterOperator.IS_NOT, ("pro",)),
        Filter(Dimension.BROWSER, FilterOperator.CONTAINS, ("fire", 1)),
        Filter(Dimension.OS, FilterOperator.IS, ("iOS",)),
    )
    with pytest.raises(ParamError, match="filters: unknown field 'nope'"):
        parse_filters({"filters": ['[{"name": "nope", "operator": "is", "value": ["x"]}]']})
    with pytest.raises(ParamError, match="filters: not a JSON list"):
        parse_filters({"filters": ['{"name": "os"}']})


def test_metric_and_int_parameters() -> None:
    assert parse_metric("bounce_rate") is Metric.BOUNCE_RATE
    with pytest.raises(ParamError) as e:
        parse_metric("events")  # not a card
    assert e.value.param == "metric"
    assert parse_int(None, "limit", 10, 1, 100) == 10 and parse_int("7", "limit", 10, 1, 100) == 7
    with pytest.raises(ParamError, match="limit: must be between 1 and 100"):
        parse_int("101", "limit", 10, 1, 100)


R = DateRange(start=datetime(2025, 3, 10), end=datetime(2025, 3, 11))


def test_forced_sessions_grain_turns_event_filters_into_a_semi_join() -> None:
    q = Query(
        project_id="p",
        range=R,
        metrics=(Metric.SESSIONS,),
        filters=(
            Filter(Dimension.PATH, FilterOperator.IS, ("/x",)),
            Filter(Dimension.COUNTRY, FilterOperator.IS, ("SE",)),
        ),
        grain=Grain.SESSIONS,
    )
    assert choose_grain(q) is Grain.SESSIONS
    sql, params = compile_query(q, DUCKDB)
    assert "s.id IN (SELECT e.session_id FROM events AS e WHERE e.project_id = $project_id" in sql
    assert "(s.country = $" in sql and "(e.path = $" in sql
    assert "/x" in params.values() and "/x" not in sql
    # Without the hint the same filters read events.
    assert (
        choose_grain(Query(project_id="p", range=R, metrics=(Metric.SESSIONS,), filters=q.filters))
        is Grain.EVENTS
    )
    with pytest.raises(QueryError, match="dimensions: path is an event field"):
        choose_grain(
            Query(
                project_id="p",
                range=R,
                metrics=(Metric.SESSIONS,),
                dimensions=(Dimension.PATH,),
                grain=Grain.SESSIONS,
            )
        )
    # Forced events with only session fields: the events table.
    events = Query(project_id="p", range=R, metrics=(Metric.REVENUE,), grain=Grain.EVENTS)
    assert choose_grain(events) is Grain.EVENTS
    assert "FROM events AS e" in compile_query(events, DUCKDB)[0]
