"""The overview page /p/{id} and its partials over real HTTP, then in headless Chromium.

Events go through the real POST /track (client IPs in X-Forwarded-For, the test GeoIP file with GB, DE
and US). The page, each partial and each tab must show exactly the numbers the report functions return,
which must equal the JSON twins (/api/p/{id}/…); a filter chip changes every widget; non-members get
404 on every route; bad parameters get a 400 naming them; tracked script payloads never run.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest

from openpanel_lite.dashboard.formatting import compact_number, duration, money, number, percent
from openpanel_lite.dashboard.overview_controls import period_label
from openpanel_lite.dashboard.overview_views import METRIC_VIEWS, bucket_label, filter_field, row_name
from openpanel_lite.dashboard.urlstate import UrlState, filter_param, from_controls, from_filter_form
from openpanel_lite.dashboard.widgets import WIDGETS
from openpanel_lite.dates import RangeName, resolve_period
from openpanel_lite.meta import clients, members, projects, users
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import Dimension, Interval, ParamError
from openpanel_lite.reports.overview import OverviewQuery
from openpanel_lite.reports.params import parse_metric, parse_overview
from openpanel_lite.reports.service import Reports
from openpanel_lite.reports.top import TopRow, TopTable
from tests.dashboard_support import ADMIN_EMAIL, ADMIN_PASSWORD, Client, logged_in, login
from tests.harness import LiveServer
from tests.ingest_support import CHROME_WIN, live_config
from tests.reports_support import FIREFOX_LINUX, IPHONE, write_geo

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "tests" / "js"
ARTIFACTS = REPO / "test-artifacts"
SITE = "https://example.com"
OUTSIDER = ("eve@example.com", "eve-password-1")


@dataclass(frozen=True)
class Visitor:
    ip: str
    user_agent: str


GB_1 = Visitor("81.2.69.10", CHROME_WIN)
DE = Visitor("2a02:2e0:3fe:1001:302::", IPHONE)
US = Visitor("12.34.56.78", FIREFOX_LINUX)
GB_2 = Visitor("81.2.69.20", CHROME_WIN)
NOWHERE = Visitor("198.51.100.7", CHROME_WIN)  # TEST-NET-2: no country in the GeoIP file


@dataclass
class Tracker:
    """Sends events to POST /track as a browser on example.com would."""

    server: LiveServer
    client_id: str

    def send(self, visitor: Visitor, name: str, props: dict[str, Any]) -> None:
        headers = {
            "openpanel-client-id": self.client_id,
            "openpanel-sdk-name": "web",
            "openpanel-sdk-version": "1.4.1",
            "User-Agent": visitor.user_agent,
            "Origin": SITE,
            "X-Forwarded-For": visitor.ip,
            "Accept-Language": "en",
            "Sec-Fetch-Mode": "cors",
        }
        if "Chrome/" in visitor.user_agent:
            headers["sec-ch-ua"] = '"Chromium";v="148"'
        body = {"type": "track", "payload": {"name": name, "properties": props}}
        reply = self.server.request("POST", "/track", body, headers)
        assert reply.status == 200, reply.body

    def view(self, visitor: Visitor, path: str, referrer: str | None = None) -> None:
        props = {"__path": SITE + path, "__title": f"Acme {path}"}
        if referrer:
            props["__referrer"] = referrer
        self.send(visitor, "screen_view", props)


def new_project(server: LiveServer, name: str) -> tuple[Project, Tracker]:
    meta = server.runtime.meta
    project = projects.create_project(meta, name, domain="example.com", cors=["example.com"])
    projects.update_project(meta, project.id, allow_unsafe_revenue_tracking=True)
    client, _secret = clients.create_client(meta, project.id)
    server.runtime.ingest.auth.invalidate()
    return project, Tracker(server, client.id)


def seed(tracker: Tracker) -> None:
    """Five visitors, five sessions, seven page views (see the module's expected numbers)."""
    tracker.view(GB_1, "/", "https://www.google.com/")
    tracker.view(GB_1, "/pricing")
    tracker.send(GB_1, "signup", {"__path": SITE + "/pricing", "plan": "pro"})
    tracker.send(GB_1, "link_out", {"__path": SITE + "/pricing", "href": "https://github.com/acme"})
    tracker.view(DE, "/blog?utm_source=newsletter&utm_medium=email&utm_campaign=spring")
    tracker.view(DE, "/")
    tracker.view(US, "/", "https://twitter.com/")
    tracker.send(US, "revenue", {"__path": SITE + "/", "__revenue": 4999})
    tracker.send(US, "signup", {"__path": SITE + "/", "plan": "free"})
    tracker.view(GB_2, "/docs")
    tracker.view(NOWHERE, "/pricing", "https://duckduckgo.com/")


class Env:
    def __init__(self, server: LiveServer, project: Project, admin: Client, outsider: Client) -> None:
        self.server = server
        self.project = project
        self.pid = project.id
        self.admin = admin
        self.outsider = outsider
        self.reports = Reports.for_runtime(server.runtime)

    def query(self, params: dict[str, list[str]] | None = None) -> OverviewQuery:
        return parse_overview(params or {}, self.project.timezone, datetime.now(UTC))

    def page(self, path: str = "", qs: str = "", headers: dict[str, str] | None = None) -> Any:
        url = f"/p/{self.pid}{path}" + (f"?{qs}" if qs else "")
        return self.admin.get(url, headers=headers)

    def twin(self, path: str, qs: str = "") -> Any:
        reply = self.admin.get(f"/api/p/{self.pid}{path}" + (f"?{qs}" if qs else ""))
        assert reply.status == 200, reply.text
        return json.loads(reply.body)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("overview")
    cfg = live_config(tmp)
    write_geo(Path(cfg.geoip.path))  # GB, DE and US (replaces the file before the server opens it)
    server = LiveServer(cfg)
    try:
        project, tracker = new_project(server, "Acme")
        seed(tracker)
        server.flush()
        admin = logged_in(server)
        admin_user = users.get_user_by_email(server.runtime.meta, ADMIN_EMAIL)
        assert admin_user is not None
        members.add_member(server.runtime.meta, project.id, admin_user.id, role="owner")
        users.create_user(server.runtime.meta, *OUTSIDER)
        outsider = login(server, *OUTSIDER)
        yield Env(server, project, admin, outsider)
    finally:
        server.stop()


def report_json(struct: Any) -> Any:
    return json.loads(msgspec.json.encode(struct))


# ------------------------------------------------------------------------------------------------
# reading the HTML

_ROW = re.compile(
    r'<tr>\s*<td class="op-table__name">.*?<span class="op-table__text">(.*?)</span>.*?</td>(.*?)</tr>', re.S
)
_CELL = re.compile(r"<td>(.*?)</td>")
_CARD = re.compile(r'id="op-card-(\w+)".*?<span class="op-card__value"[^>]*>(.*?)</span>', re.S)
_FORMATS = {"number": number, "compact": compact_number, "percent": percent, "duration": duration}
_FORMATS["money"] = money


def table_rows(text: str) -> list[tuple[str, list[str]]]:
    """(shown name, [cell texts]) per body row of the (one) table in `text`."""
    return [(html.unescape(name), _CELL.findall(cells)) for name, cells in _ROW.findall(text)]


def cards(text: str) -> dict[str, str]:
    return {key: html.unescape(value) for key, value in _CARD.findall(text)}


def expected_rows(twin: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """What the table must show for a JSON twin's answer."""
    columns = [c for c in twin["columns"] if c != "revenue" or any(r["revenue"] for r in twin["rows"])]
    field = filter_field(msgspec.convert(twin, type=TopTable))
    out = []
    for row in twin["rows"]:
        formats = {"revenue": money, "avg_duration": duration, "bounce_rate": percent}
        cells = [formats.get(c, number)(row[c]) for c in columns]
        out.append((row_name(field, msgspec.convert(row, type=TopRow)), cells))
    return out


def expected_cards(twin: dict[str, Any]) -> dict[str, str]:
    out = {}
    for card in twin["cards"]:
        view = METRIC_VIEWS[parse_metric(card["metric"])]
        out[card["metric"]] = _FORMATS[view.format](card["value"])
    return out


def tab_qs(widget: str, key: str, extra: dict[str, str] | None = None) -> str:
    return (
        urlencode({**(extra or {}), widget: key})
        if key != WIDGETS[widget].tabs[0].key
        else urlencode(extra or {})
    )


# ------------------------------------------------------------------------------------------------
# pure parts: URL state, labels


def test_url_state_is_canonical_and_changes_one_thing() -> None:
    state = UrlState.parse(
        {
            "sources": ["utm_campaign"],
            "f": ["country,is,GB", "path,is,/a b&c", "country,is,GB"],
            "range": ["7d"],
            "junk": ["x"],
            "metric": ["sessions"],
            "interval": ["", "day"],
        }
    )
    assert (
        state.query()
        == "range=7d&interval=day&f=country,is,GB&f=path,is,/a%20b%26c&metric=sessions&sources=utm_campaign"
    )
    assert UrlState.from_url("/p/x?" + state.query()) == state
    assert state.with_metric("unique_visitors").get("metric") == ""
    assert state.with_tab("sources", "referrer_name").tab("sources") == ""
    assert state.with_filter("country,is,GB") == state
    assert state.without_filter("country,is,GB").filters == ("path,is,/a b&c",)
    assert (
        state.without_filters().url("/p/x")
        == "/p/x?range=7d&interval=day&metric=sessions&sources=utm_campaign"
    )
    shown = UrlState.parse({"pages": ["entry"], "range": ["30d"]})
    assert (
        state.with_view_from(shown).query()
        == "range=7d&interval=day&f=country,is,GB&f=path,is,/a%20b%26c&pages=entry"
    )
    assert UrlState().url("/p/x") == "/p/x"
    assert filter_param("referrer_name", "") == "referrer_name,isNull"
    assert filter_param("path", "/a,b") == "path,is,/a,b"
    raw = '[{"name":"country","operator":"is","value":["SE"]},{"name":"os","operator":"is","value":"iOS"}]'
    two = UrlState.parse({"filters": [raw]})
    assert two.without_json_filter(0).get("filters") == '[{"name":"os","operator":"is","value":"iOS"}]'
    assert two.without_json_filter(0).without_json_filter(0).get("filters") == ""


def test_controls_form_is_tidied_but_urls_are_not() -> None:
    now = datetime(2025, 3, 12, 15, 0, tzinfo=UTC)
    form = {
        "from": ["controls"],
        "range": ["30d"],
        "interval": ["minute"],
        "start": ["2025-03-01"],
        "end": ["2025-03-02"],
        "f": ["country,is,GB"],
    }
    assert from_controls(form, "UTC", now).query() == "range=30d&f=country,is,GB"
    custom = {**form, "range": ["custom"], "interval": ["hour"]}
    assert from_controls(custom, "UTC", now).query() == (
        "range=custom&interval=hour&start=2025-03-01&end=2025-03-02&f=country,is,GB"
    )
    same_day = {**custom, "end": ["2025-03-01"]}  # hour is the default for one day: not written
    assert (
        from_controls(same_day, "UTC", now).query()
        == "range=custom&start=2025-03-01&end=2025-03-01&f=country,is,GB"
    )
    week = {**custom, "end": ["2025-03-31"], "interval": ["week"]}
    assert from_controls(week, "UTC", now).get("interval") == "week"
    assert (
        from_controls({**week, "range": ["7d"]}, "UTC", now).query()
        == "range=7d&interval=week&f=country,is,GB"
    )
    # A bad value other than a stale interval stays, so the page can name it.
    assert from_controls({**form, "range": ["forever"]}, "UTC", now).get("range") == "forever"


def test_filter_form_becomes_one_more_f() -> None:
    view = {"range": ["7d"], "f": ["country,is,GB"], "pages": ["exit"], "from": ["filter"]}

    def submit(**fields: str) -> str:
        return from_filter_form({**view, **{k: [v] for k, v in fields.items()}}).query()

    assert (
        submit(fk="browser", fo="is", fv="Chrome")
        == "range=7d&f=country,is,GB&f=browser,is,Chrome&pages=exit"
    )
    # An event property by name; a value may hold commas; valueless operators need no value.
    assert submit(fk="property", fp=" plan ", fo="contains", fv="pro, team").endswith(
        "f=properties.plan,contains,pro,%20team&pages=exit"
    )
    assert "f=entry_path,isNull" in submit(fk="entry_path", fo="isNull", fv="ignored")
    assert submit(fk="country", fo="is", fv="GB") == "range=7d&f=country,is,GB&pages=exit"  # once
    assert "f=properties.value,gte,10" in submit(fk="property", fp="value", fo="gte", fv="10")
    bad = [
        ({"fk": "planet", "fv": "x"}, "fk", "unknown field 'planet'"),
        ({"fk": "property", "fp": " ", "fv": "x"}, "fp", "name the event property"),
        ({"fk": "property", "fp": "a,b", "fv": "x"}, "fp", "cannot contain a comma"),
        ({"fk": "path", "fo": "like", "fv": "x"}, "fo", "unknown operator"),
        ({"fk": "path", "fo": "is", "fv": "  "}, "fv", "enter a value"),
        ({"fk": "property", "fp": "n", "fo": "gt", "fv": "ten"}, "fv", "compares numbers; 'ten' is not one"),
        ({"fk": "path", "fo": "regex", "fv": "(unclosed"}, "fv", "not a valid regular expression"),
        ({"fk": "path", "fo": "regex", "fv": "(?!x)y"}, "fv", "RE2 syntax"),
    ]
    for fields, param, message in bad:
        with pytest.raises(ParamError) as caught:
            submit(**fields)
        assert caught.value.param == param and message in caught.value.detail, (fields, caught.value)


def test_period_and_bucket_labels() -> None:
    now = datetime(2025, 3, 12, 15, 7, tzinfo=UTC)

    def label(name: RangeName, **kw: Any) -> str:
        return period_label(resolve_period(name, "UTC", now, **kw))

    assert label(RangeName.DAYS_7) == "Mar 5 – Mar 12, 2025"
    assert label(RangeName.TODAY) == "Mar 12, 2025"
    assert label(RangeName.MIN_30) == "Mar 12, 2025, 14:37 – 15:08"
    assert label(RangeName.LAST_YEAR) == "Jan 1 – Dec 31, 2024"
    assert label(RangeName.CUSTOM, start=datetime(2024, 12, 30), end=datetime(2025, 1, 3)) == (
        "Dec 30, 2024 – Jan 2, 2025"
    )
    at = datetime(2025, 3, 2, 14, 0)
    assert bucket_label(at, Interval.HOUR, False) == "14:00"
    assert bucket_label(at, Interval.HOUR, True) == "Mar 2 14:00"
    assert bucket_label(at, Interval.DAY, True) == "Mar 2"
    assert bucket_label(at, Interval.MONTH, False) == "Mar 2025"


# ------------------------------------------------------------------------------------------------
# the page and its partials


def test_page_shows_the_report_numbers(env: Env) -> None:
    page = env.page()
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    q = env.query()
    report = env.reports.cards(env.pid, q)
    twin = env.twin("/cards")
    assert twin == report_json(report)
    shown = cards(text)
    assert shown == expected_cards(twin)
    assert shown == {
        "unique_visitors": "5",
        "sessions": "5",
        "pageviews": "7",
        "views_per_session": compact_number(7 / 5),
        "bounce_rate": percent(twin["cards"][4]["value"]),
        "avg_session_duration": duration(twin["cards"][5]["value"]),
        "revenue": "49.99",
    }
    # The chart: unique visitors per day, every bucket with its tooltip, the previous period dashed.
    series = env.reports.series(env.pid, q, parse_metric("unique_visitors"))
    assert env.twin("/series", "metric=unique_visitors") == report_json(series)
    assert text.count('<g class="op-chart__bucket">') == len(series.points) == 31
    last = series.points[-1]
    assert f"<title>{bucket_label(last.time, Interval.DAY, True)}\nUnique visitors: 5\n" in text
    assert (
        'class="op-chart__prev"' in text
        and 'aria-current="true">\n    <span class="op-card__label">Unique visitors' in text
    )
    # Header: range and interval selects (only allowed intervals), the live counter, no chips.
    assert '<option value="30d" selected>Last 30 days</option>' in text
    assert re.findall(r'<select name="interval">(.*?)</select>', text, re.S)[0].count("<option") == 3
    assert '<span class="op-live__count">5</span> visitors in the last 5 minutes' in text
    assert 'hx-trigger="every 10s"' in text and "op-chips" not in text
    # The other widgets load lazily, each with a skeleton.
    for name in WIDGETS:
        assert f'id="w-{name}" hx-get="/p/{env.pid}/_partials/w/{name}" hx-trigger="load"' in text
    assert text.count('class="op-skeleton"') == len(WIDGETS)
    assert '<a href="/p/acme" aria-current="page">Overview</a>' in text
    assert page.headers["vary"] == "HX-Request, HX-Current-URL"


def test_every_widget_tab_matches_its_report_and_twin(env: Env) -> None:
    q = env.query()
    checked = 0
    for name, widget in WIDGETS.items():
        if widget.kind != "table":
            continue
        for tab in widget.tabs:
            reply = env.page(f"/_partials/w/{name}", tab_qs(name, tab.key))
            assert reply.status == 200, (name, tab.key, reply.text)
            twin = env.twin(f"/top/{tab.report_table}")
            assert twin == report_json(env.reports.top(env.pid, q, tab.report_table, 10)), (name, tab.key)
            assert table_rows(reply.text) == expected_rows(twin), (name, tab.key)
            assert f'aria-current="true">{tab.label}</a>' in reply.text
            checked += 1
    assert checked == 23
    # A few tables written out, so the test does not only trust the code it checks.
    geo = table_rows(env.page("/_partials/w/geo").text)
    assert sorted(geo) == sorted(
        [
            ("United Kingdom", ["2", "3", "0.00"]),
            ("Germany", ["1", "2", "0.00"]),
            ("United States of America", ["1", "1", "49.99"]),
            ("(not set)", ["1", "1", "0.00"]),
        ]
    )
    # Pages: sessions, views, avg time to the next view, bounce rate of the sessions entering there.
    # The seed's views follow each other within milliseconds: '/' (GB_1's, then /pricing) and /blog
    # (DE's, then /) have a time, shown in whole seconds; the other views are their sessions' last.
    pages = table_rows(env.page("/_partials/w/pages").text)
    assert [(name, cells[:2] + cells[3:]) for name, cells in pages] == [
        ("/", ["3", "3", "50.0%"]),  # entered by GB_1 and US, US bounced
        ("/pricing", ["2", "2", "100.0%"]),  # entered by NOWHERE only, who bounced
        ("/blog", ["1", "1", "0.0%"]),
        ("/docs", ["1", "1", "100.0%"]),
    ]
    assert [cells[2] for _, cells in pages][1::2] == ["–", "–"]
    assert all(re.fullmatch(r"\d+s", cells[2]) for _, cells in pages[::2])
    assert re.search(
        r'<th scope="col">Avg\. time</th>\s*<th scope="col">Bounce rate</th>',
        env.page("/_partials/w/pages").text,
    )
    assert table_rows(env.page("/_partials/w/events").text) == [
        ("signup", ["2", "2"]),
        ("link_out", ["1", "1"]),
        ("revenue", ["1", "1"]),
    ]
    events = env.page("/_partials/w/events", "events=link_out").text
    assert table_rows(events) == [("https://github.com/acme", ["1", "1"])]
    assert 'href="https://github.com/acme" target="_blank"' in events
    campaign = table_rows(env.page("/_partials/w/sources", "sources=utm_campaign").text)
    assert sorted(campaign) == [("(not set)", ["4", "5", "49.99"]), ("spring", ["1", "2", "0.00"])]
    refs = dict(table_rows(env.page("/_partials/w/sources").text))
    assert refs["Google"] == ["1", "2", "0.00"] and refs["Direct / none"] == ["1", "1", "0.00"]
    city = dict(table_rows(env.page("/_partials/w/geo", "geo=city").text))
    assert city["London, GB"] == ["2", "3", "0.00"]


def test_map_widget_shades_the_countries(env: Env) -> None:
    reply = env.page("/_partials/w/map")
    assert reply.status == 200
    text = reply.text
    assert 'id="w-map"' in text and 'class="op-map"' in text
    assert re.search(r'op-map__c--5" data-country="GB" d="[^"]+"><title>United Kingdom: 2</title>', text)
    assert re.search(
        r'op-map__c--4" data-country="US" d="[^"]+"><title>United States of America: 1</title>', text
    )
    assert re.search(r'op-map__c--0" data-country="FR"', text)


def test_card_switches_the_chart(env: Env) -> None:
    current = f"http://127.0.0.1/p/{env.pid}?sources=utm_source"
    reply = env.page(
        "/_partials/metrics", "metric=revenue", {"HX-Request": "true", "HX-Current-URL": current}
    )
    assert reply.status == 200
    text = reply.text
    assert text.startswith('<section id="op-metrics"') and "<html" not in text
    assert 'id="op-card-revenue"' in text and re.search(r'id="op-card-revenue"[^>]*aria-current="true"', text)
    assert 'class="op-chart op-chart--bars"' in text  # revenue as bars
    series = env.reports.series(env.pid, env.query(), parse_metric("revenue"))
    assert series.points[-1].value == 4999
    assert "Revenue: 49.99" in text
    # The address bar gets the view: this metric, the other widgets' tabs as on screen.
    assert reply.headers["hx-push-url"] == f"/p/{env.pid}?metric=revenue&sources=utm_source"


def test_a_filter_chip_applies_to_every_widget(env: Env) -> None:
    gb = {"f": ["country,is,GB"]}
    q = env.query(gb)
    qs = "f=country,is,GB"
    page = env.page("", qs).text
    twin = env.twin("/cards", qs)
    assert twin == report_json(env.reports.cards(env.pid, q))
    assert cards(page) == expected_cards(twin)
    assert cards(page)["unique_visitors"] == "2" and cards(page)["pageviews"] == "3"
    assert cards(page)["revenue"] == "0.00"
    chips = re.findall(r'<li class="op-chip">(.*?)</li>', page, re.S)
    assert len(chips) == 1
    chip = '<span class="op-chip__field">Country</span> is <strong class="op-chip__value">United Kingdom'
    assert chip in chips[0]
    assert f'href="/p/{env.pid}"' in chips[0]  # remove: the same view without it
    # Every lazy widget is asked with the filter, and answers with the filtered numbers.
    for name in WIDGETS:
        assert f'hx-get="/p/{env.pid}/_partials/w/{name}?f=country,is,GB"' in page
    for name, widget in WIDGETS.items():
        if widget.kind != "table":
            continue
        for tab in widget.tabs:
            reply = env.page(f"/_partials/w/{name}", tab_qs(name, tab.key, {"f": "country,is,GB"}))
            twin = env.twin(f"/top/{tab.report_table}", qs)
            assert twin == report_json(env.reports.top(env.pid, q, tab.report_table, 10))
            assert table_rows(reply.text) == expected_rows(twin), (name, tab.key)
    assert table_rows(env.page("/_partials/w/geo", qs).text) == [("United Kingdom", ["2", "3"])]
    gb_pages = table_rows(env.page("/_partials/w/pages", qs).text)
    assert [(name, cells[:2] + cells[3:]) for name, cells in gb_pages] == [
        ("/", ["1", "1", "0.0%"]),
        ("/docs", ["1", "1", "100.0%"]),
        ("/pricing", ["1", "1", "–"]),  # no GB session entered there
    ]
    assert re.fullmatch(r"\d+s", gb_pages[0][1][2]) and [c[2] for _, c in gb_pages[1:]] == ["–", "–"]
    assert table_rows(env.page("/_partials/w/events", qs).text) == [
        ("link_out", ["1", "1"]),
        ("signup", ["1", "1"]),
    ]
    assert 'data-country="DE"' in (m := env.page("/_partials/w/map", qs).text) and "Germany: 0" in m
    # Row links add their value to the filters already there.
    rows = env.page("/_partials/w/pages", qs).text
    assert f'href="/p/{env.pid}?f=country,is,GB&amp;f=path,is,/docs"' in rows
    two = env.page("", "f=country,is,GB&f=path,is,/docs").text
    assert cards(two)["pageviews"] == "1" and "Clear all" in two


def test_empty_values_filter_as_not_set(env: Env) -> None:
    text = env.page("/_partials/w/sources").text
    assert f'href="/p/{env.pid}?f=referrer_name,isNull"' in text
    page = env.page("", "f=referrer_name,isNull").text
    assert cards(page)["sessions"] == "1"
    assert '<span class="op-chip__field">Referrer</span> is not set' in page


def test_htmx_requests_get_the_dashboard_and_a_clean_url(env: Env) -> None:
    base = f"http://127.0.0.1:{env.server.cfg.server.port}/p/{env.pid}"
    hx = {"HX-Request": "true", "HX-Current-URL": f"{base}?pages=exit"}
    reply = env.page("", "f=country,is,GB&pages=entry", hx)
    assert reply.status == 200
    assert reply.text.lstrip().startswith('<div class="op-head">') and "<html" not in reply.text
    # Tabs follow the screen (exit), not the stale link (entry).
    assert reply.headers["hx-push-url"] == f"/p/{env.pid}?f=country,is,GB&pages=exit"
    assert '/_partials/w/pages?f=country,is,GB&amp;pages=exit"' in reply.text
    # The range form: a stale interval gives way, custom dates are dropped, the URL comes out clean.
    form = "from=controls&range=7d&interval=minute&start=2025-01-01&end=2025-01-09&f=country,is,GB"
    reply = env.page("", form, hx)
    assert (
        reply.status == 200
        and reply.headers["hx-push-url"] == f"/p/{env.pid}?range=7d&f=country,is,GB&pages=exit"
    )
    assert '<option value="7d" selected>' in reply.text and '<option value="hour">' in reply.text
    # Without JavaScript the form leads to the same clean URL.
    plain = env.page("", form)
    assert (plain.status, plain.location) == (303, f"/p/{env.pid}?range=7d&f=country,is,GB")
    custom = env.page("", "from=controls&range=custom&start=2025-03-01&end=2025-03-05&interval=day", hx)
    assert (
        custom.headers["hx-push-url"]
        == f"/p/{env.pid}?range=custom&start=2025-03-01&end=2025-03-05&pages=exit"
    )
    assert "Mar 1 – Mar 5, 2025" in custom.text and 'value="2025-03-05"' in custom.text
    assert cards(custom.text)["sessions"] == "0"
    # A tab click pushes its tab; a lazy load of what is shown pushes nothing.
    tab = env.page("/_partials/w/sources", "sources=utm_medium&pages=entry", hx)
    assert tab.headers["hx-push-url"] == f"/p/{env.pid}?sources=utm_medium&pages=exit"
    lazy = env.page("/_partials/w/pages", "pages=exit", hx)
    assert lazy.headers["hx-push-url"] == "false"
    # Back button with an empty history cache: the whole page.
    restore = env.page("", "pages=exit", {**hx, "HX-History-Restore-Request": "true"})
    assert restore.text.startswith("<!doctype html>")


def test_live_counter_partial(env: Env) -> None:
    reply = env.page("/_partials/live")
    assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
    assert env.twin("/live") == {"visitors": 5}
    assert '<span class="op-live__count">5</span> visitors in the last 5 minutes' in reply.text
    assert f'hx-get="/p/{env.pid}/_partials/live" hx-trigger="every 10s" hx-swap="outerHTML"' in reply.text


BAD = [
    ("range=forever", "range"),
    ("interval=minute", "interval"),
    ("interval=fortnight", "interval"),
    ("range=custom&start=2025-03-05", "end"),
    ("range=custom&start=yesterday&end=2025-03-05", "start"),
    ("range=7d&start=2025-03-05", "start"),
    ("f=nope,is,x", "f"),
    ("f=country", "f"),
    ("f=country,like,x", "f"),
    ("f=path,regex,(", "f"),
    ("f=path,regex,(?=a)b", "f"),
    ("f=properties.plan,gt,abc", "f"),
    ("filters=not-json", "filters"),
    ("metric=bogus", "metric"),
    ("sources=bogus", "sources"),
    ("geo=planet", "geo"),
]


@pytest.mark.parametrize(("qs", "param"), BAD)
def test_bad_parameters_are_named(env: Env, qs: str, param: str) -> None:
    page = env.page("", qs)
    assert page.status == 400, page.text[:300]
    assert f"<strong>Bad parameter <code>{param}</code>:</strong>" in page.text
    assert page.text.startswith("<!doctype html>") and f'href="/p/{env.pid}"' in page.text
    fragment = env.page("", qs, {"HX-Request": "true"})
    assert (
        fragment.status == 400 and "<html" not in fragment.text and f"<code>{param}</code>" in fragment.text
    )
    # Partials answer in place: the widget's box with the message.
    if param not in ("metric", "sources", "geo"):
        metrics = env.page("/_partials/metrics", qs)
        assert metrics.status == 400 and metrics.text.startswith(
            '<section class="op-widget" id="op-metrics">'
        )
        assert f"<code>{param}</code>" in metrics.text
    if param != "metric":
        widget = "geo" if param == "geo" else "sources"
        partial = env.page(f"/_partials/w/{widget}", qs)
        assert (
            partial.status == 400
            and f'id="w-{widget}"' in partial.text
            and f"<code>{param}</code>" in partial.text
        )


def test_error_messages_are_escaped(env: Env) -> None:
    page = env.page("", "range=%3Cscript%3Ewindow.__xss%3D1%3C%2Fscript%3E")
    assert page.status == 400
    assert (
        "<script>window.__xss" not in page.text and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page.text
    )


def test_non_members_get_404_everywhere(env: Env) -> None:
    routes = ["", "/_partials/metrics", "/_partials/live", *(f"/_partials/w/{name}" for name in WIDGETS)]
    for route in routes:
        reply = env.outsider.get(f"/p/{env.pid}{route}")
        assert reply.status == 404, route
        assert "visitors" not in reply.text.lower()
        assert env.admin.get(f"/p/no-such-project{route}").status == 404
    assert env.page("/_partials/w/nope").status == 404
    anonymous = Client(env.server)
    assert anonymous.get(f"/p/{env.pid}").status == 303
    shown = f"{env.server.base}/p/{env.pid}?range=7d"
    hx = anonymous.get(
        f"/p/{env.pid}/_partials/live", headers={"HX-Request": "true", "HX-Current-URL": shown}
    )
    assert hx.status == 401 and hx.headers["hx-redirect"] == f"/login?next=/p/{env.pid}%3Frange%3D7d"


# ------------------------------------------------------------------------------------------------
# Chromium

needs_browser = pytest.mark.skipif(
    not (
        Path("/usr/bin/chromium").exists()
        and shutil.which("node")
        and (JS_DIR / "node_modules/playwright-core").exists()
    ),
    reason="needs /usr/bin/chromium, node and tests/js/node_modules (npm ci)",
)

# Every lazy widget has replaced its placeholder. (Not the --loading class: htmx "settles" class for
# ids the old content had, so a fresh placeholder wears the loaded widget's class for 20 ms.)
LOADED = (
    "document.querySelectorAll('.op-widgets > section').length === 6 && "
    "!document.querySelector('[hx-trigger=load]') && !document.querySelector('.htmx-request')"
)
LAYOUT = """({
  cards: document.querySelectorAll('#op-metrics .op-card').length,
  buckets: document.querySelectorAll('#op-chart .op-chart__bucket').length,
  tables: document.querySelectorAll('.op-widgets .op-table').length,
  maps: document.querySelectorAll('.op-widgets .op-map svg').length,
  rows: [...document.querySelectorAll('#w-geo tbody tr .op-table__text')].map(e => e.textContent),
  live: document.querySelector('#op-live').textContent.replace(/\\s+/g, ' ').trim(),
  scroll: document.documentElement.scrollWidth,
  xss: window.__xss === undefined ? null : window.__xss,
})"""
ACTIVE_SOURCES_TAB = "document.querySelector('#w-sources .op-tabs a[aria-current=true]').textContent"
CHIPS = (
    "[...document.querySelectorAll('.op-chip__text')].map(e => e.textContent.replace(/\\s+/g, ' ').trim())"
)


def walk(tmp_path: Path, origin: str, steps: list[dict[str, Any]], width: int = 1280) -> dict[str, Any]:
    spec = tmp_path / f"flow-{len(list(tmp_path.glob('flow-*')))}.json"
    spec.write_text(json.dumps({"origin": origin, "width": width, "steps": steps}))
    proc = subprocess.run(
        ["node", str(JS_DIR / "overview_flow.mjs"), str(spec)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=JS_DIR,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


LOGIN = [
    {"goto": "/login"},
    {"fill": "input[name=email]", "value": ADMIN_EMAIL},
    {"fill": "input[name=password]", "value": ADMIN_PASSWORD},
    {"submit": "button[type=submit]"},
]


@pytest.mark.browser
@needs_browser
def test_overview_in_chromium(env: Env, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shots = [ARTIFACTS / "overview.png", ARTIFACTS / "overview-360.png"]
    for shot in shots:
        shot.unlink(missing_ok=True)
    pid = env.pid
    out = walk(
        tmp_path,
        env.server.base,
        [
            *LOGIN,
            {"goto": f"/p/{pid}"},
            {"waitUntil": LOADED},
            {"eval": LAYOUT, "as": "layout"},
            {"screenshot": str(shots[0])},
            # A row click: a chip appears, the URL carries the filter, every widget reloads with it.
            {"click": "#w-geo tbody tr:first-child .op-table__link"},
            {"waitFor": ".op-chip"},
            {"waitUntil": LOADED},
            {"eval": CHIPS, "as": "chips"},
            {"url": "after_row"},
            {"eval": LAYOUT, "as": "filtered"},
            # A card click switches the chart.
            {"click": "#op-card-sessions"},
            {"waitUntil": "document.querySelector('#op-card-sessions[aria-current=true]')"},
            {"url": "after_card"},
            # A tab click swaps one widget and records the tab in the URL.
            {"click": "#w-sources .op-tabs a:nth-child(4)"},
            {"waitUntil": f"{ACTIVE_SOURCES_TAB} === 'Source'"},
            {"url": "after_tab"},
            # The range select: the whole dashboard for the new range, the filter kept.
            {"select": "select[name=range]", "value": "7d"},
            {"waitUntil": "document.querySelector('select[name=range] option[value=\"7d\"][selected]')"},
            {"waitUntil": LOADED},
            {"url": "after_range"},
            {"eval": ACTIVE_SOURCES_TAB, "as": "tab"},
            # Removing the chip brings back every visitor.
            {"click": ".op-chip__remove"},
            {"waitUntil": "!document.querySelector('.op-chip')"},
            {"waitUntil": LOADED},
            {"url": "after_remove"},
            {"viewport": [360, 780]},
            {"goto": f"/p/{pid}"},
            {"waitUntil": LOADED},
            {"eval": LAYOUT, "as": "phone"},
            {"screenshot": str(shots[1])},
        ],
    )
    named = out["named"]
    layout = named["layout"]
    assert layout["cards"] == 7 and layout["buckets"] == 31 and layout["tables"] == 5 and layout["maps"] == 1
    assert sorted(layout["rows"]) == ["(not set)", "Germany", "United Kingdom", "United States of America"]
    assert layout["live"] == "5 visitors in the last 5 minutes"
    assert named["chips"] == ["Country is United Kingdom"]
    assert named["after_row"] == f"{env.server.base}/p/{pid}?f=country,is,GB"
    assert named["filtered"]["rows"] == ["United Kingdom"]
    assert named["after_card"] == f"{env.server.base}/p/{pid}?f=country,is,GB&metric=sessions"
    assert (
        named["after_tab"] == f"{env.server.base}/p/{pid}?f=country,is,GB&metric=sessions&sources=utm_source"
    )
    assert (
        named["after_range"]
        == f"{env.server.base}/p/{pid}?range=7d&f=country,is,GB&metric=sessions&sources=utm_source"
    )
    assert named["tab"] == "Source"
    assert named["after_remove"] == f"{env.server.base}/p/{pid}?range=7d&metric=sessions&sources=utm_source"
    phone = named["phone"]
    assert phone["scroll"] <= 360 and phone["cards"] == 7
    assert out["pageErrors"] == [] and out["consoleErrors"] == [] and out["dialogs"] == []
    # Nothing but this server was asked for anything.
    assert out["requests"] and all(url.startswith(env.server.base + "/") for url in out["requests"])
    assert all(shot.stat().st_size > 20_000 for shot in shots)


XSS = "<script>window.__xss=1</script>"
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_ATTR = '"><svg onload=window.__xss=1>'
XSS_JS = "javascript:window.__xss=1"

# Clicks through every tab of every widget, after each swap counting what must never appear.
TAB_SWEEP = """(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const seen = {tabs: 0, jsHrefs: 0, handlers: 0, scripts: 0, texts: []};
  const check = () => {
    const js = (a, name) => /^\\s*javascript:/i.test(a.getAttribute(name) || '');
    seen.jsHrefs += [...document.querySelectorAll('[href],[hx-get]')]
      .filter((a) => js(a, 'href') || js(a, 'hx-get')).length;
    seen.handlers += [...document.querySelectorAll('*')].filter((e) =>
      [...e.attributes].some((a) => a.name.startsWith('on'))).length;
    seen.scripts = Math.max(seen.scripts, document.scripts.length);
  };
  for (const id of ['w-sources', 'w-pages', 'w-devices', 'w-events', 'w-geo']) {
    const labels = [...document.querySelectorAll(`#${id} .op-tabs a`)].map((a) => a.textContent);
    for (const label of labels) {
      const link = [...document.querySelectorAll(`#${id} .op-tabs a`)].find((a) => a.textContent === label);
      link.click();
      for (let i = 0; i < 200; i++) {
        await sleep(25);
        const active = document.querySelector(`#${id} .op-tabs a[aria-current=true]`);
        if (active && active.textContent === label && !document.querySelector('.htmx-request')) break;
      }
      seen.tabs += 1;
      seen.texts.push(...[...document.querySelectorAll(`#${id} .op-table__text`)].map((e) => e.textContent));
      check();
    }
  }
  seen.xss = window.__xss === undefined ? null : window.__xss;
  return seen;
})()"""


@pytest.mark.browser
@needs_browser
def test_tracked_script_payloads_never_run(env: Env, tmp_path: Path) -> None:
    project, tracker = new_project(env.server, "Evil")
    admin_user = users.get_user_by_email(env.server.runtime.meta, ADMIN_EMAIL)
    assert admin_user is not None
    members.add_member(env.server.runtime.meta, project.id, admin_user.id, role="owner")
    evil_path = f"/{XSS}?utm_source={XSS_IMG}&utm_medium={XSS_ATTR}&utm_campaign={XSS}&utm_term={XSS_JS}"
    tracker.send(
        GB_1,
        "screen_view",
        {"__path": SITE + evil_path, "__title": XSS, "__referrer": f"https://evil.example/{XSS_ATTR}"},
    )
    tracker.send(
        DE, "screen_view", {"__path": SITE + "/" + XSS_IMG, "__title": XSS_IMG, "__referrer": XSS_JS}
    )
    tracker.send(GB_1, XSS_ATTR, {"__path": SITE + "/", "plan": XSS})  # <script> names are refused
    tracker.send(GB_1, "link_out", {"__path": SITE + "/", "href": XSS_JS})
    tracker.send(DE, "link_out", {"__path": SITE + "/", "href": f"https://x.example/{XSS_ATTR}"})
    env.server.flush()
    # The payloads are stored as sent, so the page really has them to show.
    names = {
        row[0] for row in env.server.rows("SELECT name FROM events WHERE project_id = $p", {"p": project.id})
    }
    assert XSS_ATTR in names
    html_page = env.admin.get(f"/p/{project.id}/_partials/w/events?events=link_out").text
    assert XSS_JS in html.unescape(html_page) and f'href="{XSS_JS}"' not in html_page
    chip_qs = urlencode([("f", f"properties.plan,is,{XSS}"), ("f", f"path,is,{XSS_ATTR}")])
    out = walk(
        tmp_path,
        env.server.base,
        [
            *LOGIN,
            {"goto": f"/p/{project.id}"},
            {"waitUntil": LOADED},
            {"eval": TAB_SWEEP, "as": "sweep"},
            {"goto": f"/p/{project.id}?{chip_qs}"},
            {"waitUntil": LOADED},
            {"eval": CHIPS, "as": "chips"},
            {"eval": "window.__xss === undefined ? null : window.__xss", "as": "xss"},
            {"goto": f"/p/{project.id}?range={XSS}"},
            {"eval": "document.querySelector('.op-error code').textContent", "as": "error_param"},
            {"eval": "window.__xss === undefined ? null : window.__xss", "as": "xss_error"},
        ],
    )
    named = out["named"]
    sweep = named["sweep"]
    assert sweep["tabs"] == 23
    assert sweep["xss"] is None and named["xss"] is None and named["xss_error"] is None
    assert sweep["jsHrefs"] == 0 and sweep["handlers"] == 0
    assert sweep["scripts"] == 2  # htmx and chart.js, nothing injected
    # The payloads are on the page as text.
    texts = set(sweep["texts"])
    assert XSS_ATTR in texts and XSS_JS in texts and f"https://x.example/{XSS_ATTR}" in texts
    assert any(XSS in t for t in texts)
    assert named["chips"] == [f"Property plan is {XSS}", f"Page is {XSS_ATTR}"]
    assert named["error_param"] == "range"
    assert out["pageErrors"] == [] and out["dialogs"] == []
    assert all(url.startswith(env.server.base + "/") for url in out["requests"])


def test_add_filter_form_on_the_page(env: Env) -> None:
    page = env.page("", "pages=exit").text
    start = page.index('<details class="op-addfilter"')
    form = page[start : page.index("</details>", start)]
    # Every dimension is offered by its label, then event properties; every operator by its word.
    fields = re.findall(r'<option value="([a-z_]+)">', form.split('name="fo"')[0])
    assert sorted(fields) == sorted([*(d.value for d in Dimension), "property"])
    assert '<option value="property">Event property…</option>' in form
    assert '<option value="gte">≥</option>' in form and '<option value="isNull">is not set</option>' in form
    assert '<input type="hidden" name="from" value="filter">' in form
    assert '<input type="hidden" name="pages" value="exit">' in form
    # Submitting it gives exactly the view a row click gives (same numbers, same chip, clean URL).
    base = f"http://127.0.0.1:{env.server.cfg.server.port}/p/{env.pid}"
    hx = {"HX-Request": "true", "HX-Current-URL": f"{base}?pages=exit"}
    submitted = env.page("", "from=filter&pages=exit&fk=country&fo=is&fv=GB", hx)
    assert submitted.status == 200
    assert submitted.headers["hx-push-url"] == f"/p/{env.pid}?f=country,is,GB&pages=exit"
    clicked = env.page("", "f=country,is,GB&pages=exit", hx)
    assert cards(submitted.text) == cards(clicked.text)
    assert cards(submitted.text)["unique_visitors"] == "2"
    assert '<span class="op-chip__field">Country</span> is <strong class="op-chip__value">United Kingdom' in (
        submitted.text
    )
    prop = env.page("", "from=filter&fk=property&fp=plan&fo=is&fv=pro", hx)
    assert prop.headers["hx-push-url"] == f"/p/{env.pid}?f=properties.plan,is,pro&pages=exit"
    assert cards(prop.text)["unique_visitors"] == "1"
    # Without JavaScript: a redirect to the clean URL.
    plain = env.page("", "from=filter&fk=country&fo=is&fv=GB")
    assert (plain.status, plain.location) == (303, f"/p/{env.pid}?f=country,is,GB")
    # A bad submission names the field and links back to the view it came from.
    bad = env.page("", "from=filter&f=country,is,GB&fk=property&fp=n&fo=gt&fv=ten")
    assert bad.status == 400 and "<strong>Bad parameter <code>fv</code>:</strong>" in bad.text
    assert f'<a href="/p/{env.pid}?f=country,is,GB">Back to the view without this filter</a>' in bad.text
    fragment = env.page("", "from=filter&fk=path&fo=regex&fv=(x", hx)
    assert fragment.status == 400 and fragment.headers["hx-push-url"] == "false"
    assert "<code>fv</code>" in fragment.text and "<html" not in fragment.text
