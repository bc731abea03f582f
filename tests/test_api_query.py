"""The JSON twins /api/p/{id}/cards|series|top/{dimension}|live: the same numbers as the report
functions, 400s naming the bad parameter, both ways in (login session, read/root client), the cache
(hit on repeat, miss after a flush) and its counters in /metrics, the OpenAPI listing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest

from openpanel_lite.dates import RangeName, resolve_period
from openpanel_lite.ingest.pipeline import Rows
from openpanel_lite.meta import clients, login_sessions, members, projects, users
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import Dimension, Filter, FilterOperator, Metric
from openpanel_lite.reports.overview import OverviewQuery
from openpanel_lite.reports.service import Reports
from openpanel_lite.storage.rows import EventRow
from tests.harness import HttpReply, LiveServer
from tests.ingest_support import Site, live_config
from tests.reports_support import seed

LA = "America/Los_Angeles"
DATES = {"start": "2025-03-10", "end": "2025-03-11"}


class Env:
    def __init__(self, server: LiveServer, project: Project) -> None:
        self.server = server
        self.project = project
        meta = server.runtime.meta
        read, self.read_secret = clients.create_client(meta, project.id, type="read")
        self.read_id = read.id
        self.reports = Reports.for_runtime(server.runtime)

    def get(self, path: str, params: Any = (), headers: dict[str, str] | None = None) -> HttpReply:
        qs = urlencode(params, doseq=True)
        url = f"/api/p/{self.project.id}{path}" + (f"?{qs}" if qs else "")
        creds = {"openpanel-client-id": self.read_id, "openpanel-client-secret": self.read_secret}
        return self.server.request("GET", url, headers=creds if headers is None else headers)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("api-query")
    server = LiveServer(live_config(tmp))
    try:
        project = projects.create_project(server.runtime.meta, "Acme", domain="example.com")
        seed(server, project, tmp / "geo.mmdb")
        yield Env(server, project)
    finally:
        server.stop()


def report_json(struct: Any) -> Any:
    return json.loads(msgspec.json.encode(struct))


def overview(tz: str, *filters: Filter) -> OverviewQuery:
    period = resolve_period(
        RangeName.CUSTOM, tz, datetime.now(UTC), start=datetime(2025, 3, 10), end=datetime(2025, 3, 12)
    )
    return OverviewQuery(period=period, filters=filters)


@pytest.mark.parametrize("tz", ["UTC", LA])
def test_twins_return_the_report_numbers(env: Env, tz: str) -> None:
    pid = env.project.id
    projects.update_project(env.server.runtime.meta, pid, timezone=tz)
    try:
        q = overview(tz)
        cards = env.get("/cards", DATES)
        assert cards.status == 200
        assert cards.json() == report_json(env.reports.cards(pid, q))
        assert cards.json()["cards"][2] == {
            "metric": "pageviews",
            "value": 8 if tz == "UTC" else 9,
            "previous": 3,
            "change": 166.7 if tz == "UTC" else 200.0,
        }
        series = env.get("/series", {**DATES, "metric": "pageviews"})
        assert series.json() == report_json(env.reports.series(pid, q, Metric.PAGEVIEWS))
        assert [p["value"] for p in series.json()["points"]] == ([5, 3] if tz == "UTC" else [6, 3])
        # RFC 3339 with the zone's offset at each instant: LA moved to PDT on 2025-03-09.
        offsets = ("Z", "Z") if tz == "UTC" else ("-07:00", "-08:00")
        assert series.json()["points"][0]["time"] == "2025-03-10T00:00:00" + offsets[0]
        assert series.json()["points"][0]["previous_time"] == "2025-03-08T00:00:00" + offsets[1]
        assert cards.json()["current"]["start"] == "2025-03-10T00:00:00" + offsets[0]
        assert cards.json()["previous"]["start"] == "2025-03-08T00:00:00" + offsets[1]
        for table in ("referrer_name", "city", "pages", "events", "link_out", "properties.plan"):
            top = env.get(f"/top/{table}", {**DATES, "limit": "3"})
            assert top.json() == report_json(env.reports.top(pid, q, table, 3)), table
    finally:
        projects.update_project(env.server.runtime.meta, pid, timezone="UTC")


def test_filters_in_both_url_forms(env: Env) -> None:
    pricing = Filter(Dimension.PATH, FilterOperator.IS, ("/pricing",))
    google = Filter(Dimension.REFERRER_NAME, FilterOperator.IS, ("Google", "Twitter"))
    expected = report_json(env.reports.cards(env.project.id, overview("UTC", pricing, google)))
    as_f = env.get("/cards", {**DATES, "f": ["path,is,/pricing"], "filters": '[{"name": "referrerName",'
                   ' "operator": "is", "value": ["Google", "Twitter"]}]'})  # fmt: skip
    assert as_f.json() == expected
    assert [c["value"] for c in as_f.json()["cards"]][:3] == [2, 2, 2]
    # A value may hold commas; isNull takes none.
    none = env.get("/top/country", {**DATES, "f": ["referrer_name,isNull"]})
    assert [(r["name"], r["sessions"]) for r in none.json()["rows"]] == [("GB", 2)]
    commas = env.get("/top/country", {**DATES, "f": ["referrer_name,is,Goo,gle"]})
    assert commas.status == 200 and commas.json()["rows"] == []


@pytest.mark.parametrize(
    ("path", "params", "param", "message"),
    [
        ("/cards", {"range": "forever"}, "range", "unknown range 'forever'"),
        ("/cards", {"range": "30d", "interval": "minute"}, "interval", "minute is not allowed"),
        ("/cards", {"interval": "fortnight"}, "interval", "unknown interval"),
        ("/cards", {"start": "10/03/2025", "end": "2025-03-11"}, "start", "not an ISO date"),
        ("/cards", {"range": "custom", "start": "2025-03-10"}, "end", "required with range=custom"),
        ("/cards", {"f": "nope,is,x"}, "f", "unknown field 'nope'"),
        ("/cards", {"f": "country,equals,SE"}, "f", "unknown operator 'equals'"),
        ("/cards", {"f": "country"}, "f", "expected field,operator"),
        ("/cards", {"f": "country,is"}, "f", "needs a value"),
        ("/cards", {"f": "browser_version,gt,ten"}, "f", "compares numbers; 'ten' is not one"),
        ("/cards", {"f": "path,regex,(x"}, "f", "not a valid regular expression"),
        ("/top/path", {"f": "path,regex,(?<=a)b"}, "f", "RE2 syntax"),
        ("/cards", {"filters": "{not json"}, "filters", "not a JSON list"),
        ("/series", {}, "metric", "required"),
        ("/series", {"metric": "events"}, "metric", "unknown metric 'events'"),
        ("/top/nope", {}, "dimension", "unknown field 'nope'"),
        ("/top/country", {"limit": "0"}, "limit", "between 1 and 1000"),
        ("/top/country", {"limit": "ten"}, "limit", "must be an integer"),
        ("/top/country", {"offset": "-1"}, "offset", "between 0"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    env: Env, path: str, params: dict[str, str], param: str | None, message: str
) -> None:
    reply = env.get(path, params)
    assert reply.status == 400, reply.text
    body = reply.json()
    assert body["status"] == 400 and body["error"] == "Bad Request"
    assert message in body["message"]
    assert body["param"] == param
    if param:
        assert body["message"].startswith(f"{param}: ")


def test_access(env: Env) -> None:
    meta = env.server.runtime.meta
    assert env.get("/live", headers={}).status == 401
    assert (
        env.get("/live", headers={"openpanel-client-id": env.read_id, "openpanel-client-secret": "x"}).status
        == 401
    )
    write, write_secret = clients.create_client(meta, env.project.id, type="write")
    as_write = {"openpanel-client-id": write.id, "openpanel-client-secret": write_secret}
    assert env.get("/live", headers=as_write).status == 403
    other = projects.create_project(meta, "Other", domain=None)
    other_read, other_secret = clients.create_client(meta, other.id, type="read")
    reply = env.get(
        "/cards", headers={"openpanel-client-id": other_read.id, "openpanel-client-secret": other_secret}
    )
    assert (reply.status, reply.json()["message"]) == (403, "You do not have access to this project")
    root, root_secret = clients.create_client(meta, other.id, type="root")
    as_root = {"openpanel-client-id": root.id, "openpanel-client-secret": root_secret}
    assert env.get("/live", headers=as_root).json() == {"visitors": 0}
    missing = env.server.request("GET", "/api/p/no-such-project/live", headers=as_root)
    assert missing.status == 404
    # A dashboard login: members read, others get the same 404 as for a missing project.
    user = users.create_user(meta, "ada@example.com", "correct horse battery")
    _, token = login_sessions.create_login_session(meta, user.id, ttl=timedelta(hours=1))
    cookie = {"Cookie": f"op_session={token}"}
    assert env.get("/live", headers=cookie).status == 404
    members.add_member(meta, env.project.id, user.id)
    member = env.get("/top/country", DATES, headers=cookie)
    assert member.status == 200 and [r["name"] for r in member.json()["rows"]] == ["GB", "US", "DE"]
    assert env.get("/live", headers={"Cookie": "op_session=forged"}).status == 401


def test_cache_hits_on_repeat_and_misses_after_a_flush(env: Env) -> None:
    meta = env.server.runtime.meta
    project = projects.create_project(meta, "Cached", domain=None)
    root, secret = clients.create_client(meta, project.id, type="root")
    headers = {"openpanel-client-id": root.id, "openpanel-client-secret": secret}
    url = f"/api/p/{project.id}/cards?start=2025-03-10&end=2025-03-11"
    cache = env.reports.cache

    def revenue_event(amount: int) -> None:
        row = EventRow(
            id=uuid.uuid4(),
            name="revenue",
            project_id=project.id,
            revenue=amount,
            created_at=datetime(2025, 3, 10, 12),
        )
        env.server.call(env.server.runtime.ingest.sink.write(Rows(events=[row]), None))
        env.server.flush()

    def revenue() -> float:
        reply = env.server.request("GET", url, headers=headers)
        return float(reply.json()["cards"][6]["value"])

    revenue_event(100)
    hits, misses = cache.hits, cache.misses
    assert revenue() == 100.0
    # Two statements (sessions, revenue) for each of the two periods.
    assert (cache.hits - hits, cache.misses - misses) == (0, 4)
    assert revenue() == 100.0
    assert (cache.hits - hits, cache.misses - misses) == (4, 4)
    revenue_event(23)
    assert revenue() == 123.0
    assert (cache.hits - hits, cache.misses - misses) == (4, 8)
    metrics = env.server.request("GET", "/metrics").text
    assert f"openpanel_query_cache_hits_total {float(cache.hits)}" in metrics
    assert f"openpanel_query_cache_misses_total {float(cache.misses)}" in metrics
    assert "openpanel_query_cache_hit_ratio " in metrics


def test_live_counts_visitors_of_the_last_five_minutes(env: Env) -> None:
    site = Site(env.server)
    for ip in ("81.2.69.142", "81.2.69.143"):
        view = {
            "type": "track",
            "payload": {"name": "screen_view", "properties": {"__path": "https://example.com/"}},
        }
        assert site.track(view, **{"X-Forwarded-For": ip}).status == 200
    env.server.flush()
    read, secret = clients.create_client(env.server.runtime.meta, site.project.id, type="read")
    reply = env.server.request(
        "GET",
        f"/api/p/{site.project.id}/live",
        headers={"openpanel-client-id": read.id, "openpanel-client-secret": secret},
    )
    assert reply.json() == {"visitors": 2}


def test_openapi_lists_the_twins(env: Env) -> None:
    schema = env.server.request("GET", "/schema/openapi.json").json()
    paths = schema["paths"]
    for path in ("cards", "series", "top/{dimension}", "live"):
        assert f"/api/p/{{project_id}}/{path}" in paths
    cards = paths["/api/p/{project_id}/cards"]["get"]
    assert {p["name"] for p in cards["parameters"]} >= {"range", "interval", "start", "end", "f", "filters"}
    assert "400" in cards["responses"]
    assert {"Cards", "Card", "TopTable", "TopRow", "Series", "Live"} <= set(schema["components"]["schemas"])
