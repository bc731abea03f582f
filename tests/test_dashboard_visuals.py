"""Overview building blocks: SVG charts, world map, Jinja filters and partials, plus one Chromium render.

Exact strings where the output is ours to define; hostile labels everywhere data is shown.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from openpanel_lite.dashboard import formatting, worldmap, worldmap_data
from openpanel_lite.dashboard.charts import Point, bar_chart, line_chart, nice_ticks, sparkline
from openpanel_lite.dashboard.formatting import (
    compact_number,
    delta,
    duration,
    http_url,
    local_url,
    money,
    number,
    percent,
)
from openpanel_lite.dashboard.worldmap import world_map

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = REPO_ROOT / "web" / "templates"
STATIC = REPO_ROOT / "web" / "static"
JS_DIR = Path(__file__).parent / "js"
ARTIFACTS = REPO_ROOT / "test-artifacts"
SVG = "{http://www.w3.org/2000/svg}"

# Payloads that would set window.__xss if they ever ran; the Chromium test checks it stays unset.
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_ATTR = '"onmouseover="window.__xss=1" x="'
XSS_IMG = "<img src=x onerror=window.__xss=1>"
XSS_SVG = "</title><script>window.__xss=1</script><title>"
XSS_URL = "javascript:window.__xss=1"


def env() -> Environment:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    formatting.register(environment)
    return environment


def parse(svg: str) -> ET.Element:
    """The SVG must be well-formed XML (a hostile label breaking out would make it fail here first)."""
    return ET.fromstring(svg)


# ---------------------------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (7, "7"),
        (999, "999"),
        (2.5, "2.5"),
        (2.46, "2.5"),
        (999.96, "1k"),
        (1000, "1k"),
        (1234, "1.2k"),
        (12_345, "12.3k"),
        (123_456, "123k"),
        (999_950, "1M"),
        (3_400_000, "3.4M"),
        (7_250_000_000, "7.3B"),
        (-1234, "-1.2k"),
        (-0.01, "0"),
        (None, "–"),
        (float("nan"), "–"),
    ],
)
def test_compact_number(value: float | None, text: str) -> None:
    assert compact_number(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (45, "45s"),
        (59.6, "1m"),
        (192, "3m 12s"),
        (180, "3m"),
        (3600, "1h"),
        (3720, "1h 2m"),
        (3605, "1h"),
        (90_061, "1d 1h"),
        (-5, "0s"),
        (None, "–"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_percent_money_number() -> None:
    assert [percent(v) for v in (12.345, 0, 100, -0.01, 45.25, None)] == [
        "12.3%",
        "0.0%",
        "100.0%",
        "0.0%",
        "45.3%",
        "–",
    ]
    assert [money(v) for v in (1999, 0, 5, -5, 123_456, 100_000_000, None)] == [
        "19.99",
        "0.00",
        "0.05",
        "-0.05",
        "1,234.56",
        "1,000,000.00",
        "–",
    ]
    assert [number(v) for v in (0, 1234, 1_234_567.6, None)] == ["0", "1,234", "1,234,568", "–"]


def test_delta_markup() -> None:
    assert delta(112.3, 100) == Markup('<span class="op-delta op-delta--up op-delta--good">+12.3%</span>')
    assert delta(96, 100) == Markup('<span class="op-delta op-delta--down op-delta--bad">\u22124.0%</span>')
    # Bounce rate: lower is better, so a fall is good and a rise is bad.
    assert delta(96, 100, True) == Markup(
        '<span class="op-delta op-delta--down op-delta--good">\u22124.0%</span>'
    )
    assert delta(104, 100, True) == Markup('<span class="op-delta op-delta--up op-delta--bad">+4.0%</span>')
    assert delta(100.01, 100) == Markup('<span class="op-delta op-delta--flat">0.0%</span>')
    assert delta(5, 0) == Markup('<span class="op-delta op-delta--none"></span>')
    assert delta(5, None) == Markup('<span class="op-delta op-delta--none"></span>')
    assert delta(0, 50) == Markup('<span class="op-delta op-delta--down op-delta--bad">\u2212100.0%</span>')


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/a?b=1", True),
        ("http://example.com", True),
        ("HTTPS://EXAMPLE.COM/", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("//evil.example/", False),
        ("http://", False),
        ("https:/\\evil", False),
        ("ftp://example.com/", False),
        ("", False),
        (None, False),
    ],
)
def test_http_url(url: str | None, ok: bool) -> None:
    assert http_url(url) == (url if ok else None)


def test_local_url() -> None:
    assert local_url("?f=path,is,/blog") == "?f=path,is,/blog"
    assert local_url("/p/abc/overview?metric=sessions") == "/p/abc/overview?metric=sessions"
    for bad in ("//evil.example/", "/\\evil.example", "https://evil.example/", XSS_URL, "", None, "/a\nb"):
        assert local_url(bad) == "#"


def test_register_installs_filters() -> None:
    environment = env()
    out = environment.from_string(
        "{{ 1234|compact_number }} {{ 192|duration }} {{ 12.345|percent }} {{ 1999|money }} "
        "{{ 1234|number }} {{ 110|delta(100) }} {{ 'javascript:x'|http_url }} {{ '//x'|local_url }}"
    ).render()
    assert out == (
        "1.2k 3m 12s 12.3% 19.99 1,234 "
        '<span class="op-delta op-delta--up op-delta--good">+10.0%</span> None #'
    )


# ----------------------------------------------------------------------------------------------- charts


def test_nice_ticks() -> None:
    assert nice_ticks(0) == [0, 1, 2, 3, 4]
    assert nice_ticks(1) == [0, 1]
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(10) == [0, 5, 10]
    assert nice_ticks(30) == [0, 10, 20, 30]
    assert nice_ticks(99) == [0, 25, 50, 75, 100]
    assert nice_ticks(1234) == [0, 500, 1000, 1500]
    assert nice_ticks(1, whole_numbers=False) == [0, 0.25, 0.5, 0.75, 1]
    assert nice_ticks(2.6, whole_numbers=False) == [0, 1, 2, 3]


def test_line_chart_exact_small_series() -> None:
    svg = line_chart(
        [Point("Mar 1", 10), Point("Mar 2", 25), Point("Mar 3", 5)],
        [Point("Feb 22", 8), Point("Feb 23", 30)],
        width=720,
        height=200,
        label="Sessions",
    )
    assert isinstance(svg, Markup)
    root = parse(str(svg))
    assert root.get("class") == "op-chart op-chart--line"
    assert root.get("aria-label") == "Sessions: 3 buckets from Mar 1 to Mar 3"
    # Top tick is 30 (step 10); the plot is 200 - 12 - 24 = 164 px tall and starts at y = 12.
    grid = [line.get("y1") for line in root.find(f"{SVG}g[@class='op-chart__grid']") or []]
    assert grid == ["176", "121.33", "66.67", "12"]
    y_labels = [t.text for t in root.find(f"{SVG}g[@class='op-chart__yl']") or []]
    assert y_labels == ["10", "20", "30"]
    x_labels = [
        (t.get("x"), t.get("text-anchor"), t.text) for t in root.find(f"{SVG}g[@class='op-chart__xl']") or []
    ]
    assert x_labels == [("0%", "start", "Mar 1"), ("50%", "middle", "Mar 2"), ("100%", "end", "Mar 3")]
    paths = {p.get("class"): p.get("d") for p in root.iter(f"{SVG}path")}
    assert paths == {
        "op-chart__area": "M0 109.33L50 27.33L100 136.67L100 164L0 164Z",
        "op-chart__prev": "M0 120.27L50 0",
        "op-chart__line": "M0 109.33L50 27.33L100 136.67",
    }
    buckets = root.findall(f".//{SVG}g[@class='op-chart__bucket']")
    assert [b.find(f"{SVG}title").text for b in buckets] == [  # type: ignore[union-attr]
        "Mar 1\nSessions: 10\nPrevious period (Feb 22): 8",
        "Mar 2\nSessions: 25\nPrevious period (Feb 23): 30",
        "Mar 3\nSessions: 5",
    ]
    hits = [(r.get("x"), r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert hits == [("0%", "25%"), ("25%", "50%"), ("75%", "25%")]
    dots = [(c.get("class"), c.get("cx"), c.get("cy")) for c in root.iter(f"{SVG}circle")]
    assert dots == [
        ("op-chart__dot op-chart__dot--prev", "0%", "132.27"),
        ("op-chart__dot", "0%", "121.33"),
        ("op-chart__dot op-chart__dot--prev", "50%", "12"),
        ("op-chart__dot", "50%", "39.33"),
        ("op-chart__dot", "100%", "148.67"),
    ]


def test_line_chart_exact_string_single_point() -> None:
    svg = line_chart([Point("Today", 3)], None, width=300, height=100, label="Visitors")
    assert str(svg) == (
        '<svg xmlns="http://www.w3.org/2000/svg" class="op-chart op-chart--line op-chart--single" '
        'width="100%" height="100" role="img" aria-label="Visitors: 1 bucket from Today to Today" '
        'tabindex="0" aria-keyshortcuts="ArrowLeft ArrowRight Home End">'
        '<g class="op-chart__grid" aria-hidden="true">'
        '<line x1="0" x2="100%" y1="76" y2="76"/><line x1="0" x2="100%" y1="54.67" y2="54.67"/>'
        '<line x1="0" x2="100%" y1="33.33" y2="33.33"/><line x1="0" x2="100%" y1="12" y2="12"/></g>'
        '<g class="op-chart__xl" aria-hidden="true">'
        '<text x="50%" y="93" text-anchor="middle">Today</text></g>'
        '<svg class="op-chart__plot" x="0" y="12" width="100%" height="64" viewBox="0 0 100 64" '
        'preserveAspectRatio="none" overflow="visible" aria-hidden="true">'
        '<path class="op-chart__area" d="M50 0L50 64L50 64Z"/>'
        '<path class="op-chart__line" d="M50 0" fill="none" vector-effect="non-scaling-stroke"/></svg>'
        '<g class="op-chart__yl" aria-hidden="true"><text x="2" y="51.67">1</text>'
        '<text x="2" y="30.33">2</text><text x="2" y="9">3</text></g>'
        '<g class="op-chart__buckets"><g class="op-chart__bucket"><title>Today\nVisitors: 3</title>'
        '<rect class="op-chart__hit" x="0%" y="0" width="100%" height="100" fill="transparent"/>'
        '<line class="op-chart__cursor" x1="50%" x2="50%" y1="12" y2="76"/>'
        '<circle class="op-chart__dot" cx="50%" cy="12" r="3.5"/></g></g></svg>'
    )


def test_bar_chart_and_formats() -> None:
    svg = bar_chart(
        [Point("Mar 1", 1999), Point("Mar 2", 500)],
        [Point("Feb 27", 1000)],
        height=200,
        value_format=formatting.money,
        label="Revenue",
    )
    root = parse(str(svg))
    assert root.get("class") == "op-chart op-chart--bars"
    # Top tick 2000 cents: ticks 0, 500, 1000, 1500, 2000 shown as money.
    assert [t.text for t in root.find(f"{SVG}g[@class='op-chart__yl']") or []] == [
        "5.00",
        "10.00",
        "15.00",
        "20.00",
    ]
    rects = [
        (r.get("class"), r.get("x"), r.get("y"), r.get("width"), r.get("height"))
        for r in root.iter(f"{SVG}rect")
    ]
    assert rects[:3] == [
        ("op-chart__prevbar", "4", "82", "42", "82"),
        ("op-chart__bar", "7.5", "0.08", "35", "163.92"),
        ("op-chart__bar", "57.5", "123", "35", "41"),
    ]
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles == ["Mar 1\nRevenue: 19.99\nPrevious period (Feb 27): 10.00", "Mar 2\nRevenue: 5.00"]


def test_chart_label_density() -> None:
    points = [Point(f"D{i}", i) for i in range(30)]
    root = parse(str(line_chart(points, width=360)))
    labels = [t.text for t in root.find(f"{SVG}g[@class='op-chart__xl']") or []]
    # 360 px fits 4 labels: every 8th bucket.
    assert labels == ["D0", "D8", "D16", "D24"]
    assert len(root.findall(f".//{SVG}g[@class='op-chart__bucket']")) == 30


def test_chart_empty_and_sparkline() -> None:
    assert str(line_chart([], None, height=120, label="Sessions")) == (
        '<svg xmlns="http://www.w3.org/2000/svg" class="op-chart op-chart--empty" width="100%" height="120" '
        'role="img" aria-label="Sessions: no data"><text x="50%" y="60" text-anchor="middle">'
        "No data for this period</text></svg>"
    )
    assert str(sparkline([1, 3, 2])) == (
        '<svg xmlns="http://www.w3.org/2000/svg" class="op-spark" width="96" height="28" viewBox="0 0 96 28" '
        'preserveAspectRatio="none" aria-hidden="true" focusable="false">'
        '<path class="op-spark__line" d="M0 18L48 2L96 10" fill="none" '
        'vector-effect="non-scaling-stroke"/></svg>'
    )
    assert "<path" not in str(sparkline([5]))


def test_chart_is_deterministic_and_ignores_bad_values() -> None:
    points = [Point("a", 1), Point("b", float("nan")), Point("c", -4), Point("d", float("inf"))]
    first = line_chart(points, points, label="x")
    assert first == line_chart(points, points, label="x")
    root = parse(str(first))
    assert [p.get("d") for p in root.iter(f"{SVG}path")][-1] == "M0 0L33.33 204L66.67 204L100 204"


@pytest.mark.parametrize("hostile", [XSS_SCRIPT, XSS_ATTR, XSS_IMG, XSS_SVG, XSS_URL, "a & b ' \" < >"])
def test_chart_escapes_labels(hostile: str) -> None:
    for render in (line_chart, bar_chart):
        svg = str(render([Point(hostile, 1), Point("ok", 2)], [Point(hostile, 3)], label=hostile))
        root = parse(svg)  # a label that broke out of its element would not parse or would add nodes
        assert "<script" not in svg and "<img" not in svg and 'onmouseover="' not in svg
        texts = [t.text for t in root.iter(f"{SVG}text")]
        # Axis labels are cut at 14 characters; the tooltip keeps the whole label.
        assert (hostile if len(hostile) <= 14 else hostile[:13] + "\u2026") in texts
        titles = [t.text for t in root.iter(f"{SVG}title")]
        assert titles[0] == f"{hostile}\n{hostile}: 1\nPrevious period ({hostile}): 3"
        assert root.get("aria-label") == f"{hostile}: 2 buckets from {hostile} to ok"
        assert {el.tag for el in root.iter()} <= {
            f"{SVG}{t}" for t in ("svg", "g", "line", "text", "path", "rect", "circle", "title")
        }


# ---------------------------------------------------------------------------------------------- world map


def _bbox(path: str) -> tuple[int, int, int, int]:
    """(min x, min y, max x, max y) of relative 'M x y l dx dy … z' path data."""
    xs: list[int] = []
    ys: list[int] = []
    for ring in re.findall(r"M([^z]*)z", path):
        start, rest = ring.split("l", 1)
        x, y = (int(v) for v in start.split())
        xs.append(x)
        ys.append(y)
        numbers = [int(v) for v in re.findall(r"-?\d+", rest)]
        for dx, dy in zip(numbers[::2], numbers[1::2], strict=True):
            x += dx
            y += dy
            xs.append(x)
            ys.append(y)
    return min(xs), min(ys), max(xs), max(ys)


def test_worldmap_data_keys_and_geography() -> None:
    codes = [code for code, _, _ in worldmap_data.COUNTRIES if code]
    assert len(codes) == len(set(codes)) == 174
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in codes)
    shapes = {code: (name, path) for code, name, path in worldmap_data.COUNTRIES if code}
    for code, name in (
        ("SE", "Sweden"),
        ("US", "United States of America"),
        ("IN", "India"),
        ("BR", "Brazil"),
    ):
        assert shapes[code][0] == name
    assert "XK" in shapes and "AQ" not in shapes  # Kosovo keyed by XK; Antarctica left out
    assert all(re.fullmatch(r"(M\d+ \d+l[-\d ]+z)+", path) for _, _, path in worldmap_data.COUNTRIES)
    boxes = {code: _bbox(shapes[code][1]) for code in ("SE", "US", "IN", "BR", "AU", "RU", "FJ")}
    for box in boxes.values():
        assert 0 <= box[0] < box[2] <= worldmap_data.WIDTH and 0 <= box[1] < box[3] <= worldmap_data.HEIGHT
    # Sweden is north-east of Brazil, India east of Sweden, the US west of everything else.
    assert boxes["SE"][3] < boxes["BR"][1] and boxes["SE"][0] > boxes["BR"][2]
    assert boxes["IN"][0] > boxes["SE"][2]
    assert boxes["US"][2] < boxes["SE"][0]
    # Russia is cut at the antimeridian but no piece may be stretched across the whole map.
    assert all(
        _bbox(f"M{ring}z")[2] - _bbox(f"M{ring}z")[0] < worldmap_data.WIDTH * 0.6
        for code in ("RU", "FJ")
        for ring in re.findall(r"M([^z]*)z", shapes[code][1])
    )


def test_world_map_levels_and_titles() -> None:
    svg = str(world_map({"SE": 1200, "us": 4800, "IN": 300, "BR": 0, "ZZ": 99_999}, label="Sessions"))
    figure = ET.fromstring(svg)
    root = figure.find(f"{SVG}svg")
    assert root is not None and root.get("viewBox") == f"0 0 {worldmap_data.WIDTH} {worldmap_data.HEIGHT}"
    by_code = {p.get("data-country"): p for p in root.iter(f"{SVG}path") if p.get("data-country")}
    assert len(by_code) == 174

    def shade(code: str) -> str:
        return by_code[code].get("class", "")

    # sqrt scale against the top value 4800 (ZZ has no shape, so it does not count).
    assert shade("US") == "op-map__c op-map__c--5"
    assert shade("SE") == "op-map__c op-map__c--3"  # sqrt(1200/4800) = 0.5 -> ceil(2.5)
    assert shade("IN") == "op-map__c op-map__c--2"  # sqrt(300/4800) = 0.25 -> ceil(1.25)
    assert shade("BR") == "op-map__c op-map__c--0"
    titles = {code: p.find(f"{SVG}title").text for code, p in by_code.items()}  # type: ignore[union-attr]
    assert titles["SE"] == "Sweden: 1.2k"
    assert titles["US"] == "United States of America: 4.8k"
    assert titles["BR"] == "Brazil: 0"
    legend = figure.find("figcaption")
    assert legend is not None
    assert [s.get("title") for s in legend.iter("span") if s.get("title")] == [
        "0 – 192",
        "192 – 768",
        "768 – 1.7k",
        "1.7k – 3.1k",
        "3.1k – 4.8k",
    ]
    assert [s.text for s in legend.iter("span") if s.text] == ["Sessions", "0", "4.8k"]


def test_world_map_level_function_and_empty() -> None:
    assert [worldmap.level(v, 100) for v in (0, 0.5, 1, 4, 4.01, 16, 36, 64, 99, 100, 1000)] == [
        0,
        1,
        1,
        1,
        2,
        2,
        3,
        4,
        5,
        5,
        5,
    ]
    svg = str(world_map({}))
    assert "op-map__c--1" not in svg
    assert "No countries in this period" in svg
    assert str(world_map({}, label=XSS_SCRIPT)).count("<script") == 0


def test_gen_worldmap_is_fresh() -> None:
    pytest.importorskip("iso3166", reason="scripts/gen_worldmap.py needs PyPI iso3166 (MIT)")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_worldmap.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------------------------- partials

HOSTILE_ROWS = [
    {"name": XSS_SCRIPT, "filter_url": "?f=path,is,x", "sessions": 40, "pageviews": 90, "url": XSS_URL},
    {
        "name": XSS_ATTR,
        "filter_url": XSS_URL,
        "sessions": 10,
        "pageviews": 12,
        "url": "https://news.example/a?b=1&c=2",
    },
    {
        "name": XSS_IMG,
        "filter_url": "//evil.example/",
        "sessions": 20,
        "pageviews": 25,
        "url": " javascript:x",
    },
    {"name": "/pricing", "filter_url": "?f=path,is,/pricing", "sessions": 0, "pageviews": 0},
]


def render_table(**extra: Any) -> str:
    table = {"id": "w-pages", "title": "Top pages", "dimension": "Page", "rows": HOSTILE_ROWS, **extra}
    return env().get_template("dashboard/_table.html").render(table=table)


def test_table_escapes_and_links() -> None:
    html = render_table()
    assert "<script" not in html and "<img" not in html and 'onmouseover="' not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == [
        "?f=path,is,x",
        "#",
        "https://news.example/a?b=1&amp;c=2",
        "#",
        "?f=path,is,/pricing",
    ]
    # Only the http(s) URL became a separate link; javascript: URLs are shown nowhere as links.
    assert html.count('class="op-ext"') == 1
    assert re.findall(r'<rect width="([\d.]+)"', html) == ["100.0", "25.0", "50.0", "0.0"]
    assert re.findall(r"<td>([^<]*)</td>", html) == ["40", "90", "10", "12", "20", "25", "0", "0"]
    assert 'hx-get="' not in html  # no hx_target: plain links


def test_table_options() -> None:
    html = render_table(
        hx_target="#op-page",
        columns=[{"key": "pageviews", "label": "Views"}],
        tabs=[
            {"label": "Top", "url": "/w/pages?tab=top", "active": True},
            {"label": XSS_SCRIPT, "url": XSS_URL, "href": "/p?tab=entry"},
        ],
    )
    assert '<th scope="col">Views</th>' in html and "Sessions" not in html
    assert re.findall(r'<rect width="([\d.]+)"', html) == ["100.0", "13.3", "27.8", "0.0"]
    assert 'hx-get="?f=path,is,x" hx-target="#op-page" hx-push-url="true"' in html
    assert (
        '<a href="/w/pages?tab=top" hx-get="/w/pages?tab=top" hx-target="#w-pages" hx-swap="outerHTML" '
        'hx-indicator="#w-pages-loading" aria-current="true">Top</a>'
    ) in html
    assert 'href="/p?tab=entry" hx-get="#"' in html
    assert "<script" not in html


def test_table_accepts_objects() -> None:
    """Rows and the table may be objects (msgspec Structs, dataclasses) as well as dicts."""

    @dataclasses.dataclass
    class Row:
        name: str
        filter_url: str
        sessions: int
        pageviews: int
        url: str | None = None

    @dataclasses.dataclass
    class Table:
        id: str
        title: str
        dimension: str
        rows: list[Row]
        columns: None = None
        tabs: None = None
        top: None = None
        hx_target: None = None
        empty_text: None = None
        lazy_url: None = None

    table = Table(
        "w-c", "Countries", "Country", [Row("Sweden", "?f=country,is,SE", 3, 4), Row("Chile", "?x", 1, 1)]
    )
    html = env().get_template("dashboard/_table.html").render(table=table)
    assert re.findall(r"<td>([^<]*)</td>", html) == ["3", "4", "1", "1"]
    assert re.findall(r'<rect width="([\d.]+)"', html) == ["100.0", "33.3"]


def test_table_empty_and_lazy() -> None:
    empty = (
        env()
        .get_template("dashboard/_table.html")
        .render(table={"id": "w-x", "title": "Browsers", "dimension": "Browser", "rows": []})
    )
    assert '<p class="op-empty">No data for this period</p>' in empty
    lazy = (
        env()
        .get_template("dashboard/_table.html")
        .render(table={"id": "w-x", "title": "Browsers", "lazy_url": "/p/1/w/browsers?range=7d"})
    )
    assert lazy.startswith(
        '<section class="op-widget op-widget--loading" id="w-x" hx-get="/p/1/w/browsers?range=7d" '
        'hx-trigger="load" hx-swap="outerHTML" aria-busy="true">'
    )
    assert lazy.count('<div class="op-skeleton__line"></div>') == 5


CARDS = [
    {"key": "visitors", "label": "Unique visitors", "value": 1234, "previous": 1000, "format": "compact"},
    {"key": "sessions", "label": "Sessions", "value": 1500, "previous": 1600, "format": "compact"},
    {"key": "pageviews", "label": "Pageviews", "value": 4000, "previous": None, "format": "number"},
    {"key": "pages_per_session", "label": "Pages per session", "value": 2.666, "previous": 2.5},
    {
        "key": "bounce_rate",
        "label": "Bounce rate",
        "value": 41.25,
        "previous": 45,
        "format": "percent",
        "inverse": True,
    },
    {"key": "duration", "label": "Session duration", "value": 192, "previous": 200, "format": "duration"},
    {"key": "revenue", "label": XSS_SCRIPT, "value": 1999, "previous": 0, "format": "money"},
]


def render_cards() -> str:
    cards = [
        {
            **c,
            "url": f"?metric={c['key']}",
            "hx_url": f"/p/1/chart?metric={c['key']}",
            "active": c["key"] == "sessions",
        }
        for c in CARDS
    ]
    cards[0]["spark"] = sparkline([1, 2, 3])
    return env().get_template("dashboard/_cards.html").render(metrics={"cards": cards})


def test_cards() -> None:
    html = render_cards()
    assert html.count('class="op-card"') == 7
    values = re.findall(r'<span class="op-card__value"[^>]*>([^<]*)</span>', html)
    assert values == ["1.2k", "1.5k", "4,000", "2.7", "41.3%", "3m 12s", "19.99"]
    deltas = re.findall(r'<span class="(op-delta[^"]*)">([^<]*)</span>', html)
    assert deltas == [
        ("op-delta op-delta--up op-delta--good", "+23.4%"),
        ("op-delta op-delta--down op-delta--bad", "\u22126.3%"),
        ("op-delta op-delta--none", ""),
        ("op-delta op-delta--up op-delta--good", "+6.6%"),
        ("op-delta op-delta--down op-delta--good", "\u22128.3%"),
        ("op-delta op-delta--down op-delta--bad", "\u22124.0%"),
        ("op-delta op-delta--none", ""),
    ]
    assert (
        '<a class="op-card" id="op-card-sessions" href="?metric=sessions" '
        'hx-get="/p/1/chart?metric=sessions" '
        'hx-target="#op-metrics" hx-swap="outerHTML" hx-push-url="?metric=sessions" '
        'hx-indicator="#op-chart-loading" aria-current="true">'
    ) in html
    assert html.count('aria-current="true"') == 1
    assert 'title="Previous period: 45.0%"' in html
    assert html.count('class="op-spark"') == 1
    assert "<script" not in html and "&lt;script&gt;" in html


def test_chart_and_map_partials() -> None:
    svg = line_chart([Point("a", 1), Point("b", 2)], [Point("c", 2)], label="Sessions")
    html = (
        env()
        .get_template("dashboard/_chart.html")
        .render(chart={"svg": svg, "title": "Sessions", "previous_label": "Previous period"})
    )
    assert str(svg) in html
    assert '<span class="op-chart-legend__item">Sessions</span>' in html
    assert '<span class="op-chart-legend__item op-chart-legend__item--prev">Previous period</span>' in html
    assert 'id="op-chart-loading"' in html
    lazy = env().get_template("dashboard/_chart.html").render(chart={"title": "Sessions", "lazy_url": "/c"})
    assert 'hx-get="/c" hx-trigger="load"' in lazy and '<div class="op-skeleton__block"></div>' in lazy
    geo = world_map({"SE": 5})
    html = (
        env()
        .get_template("dashboard/_map.html")
        .render(geo_map={"id": "w-map", "title": "Countries", "svg": geo})
    )
    assert str(geo) in html and 'id="w-map"' in html
    lazy = (
        env()
        .get_template("dashboard/_map.html")
        .render(geo_map={"id": "w-map", "title": "Map", "lazy_url": "/m"})
    )
    assert "op-skeleton__block--map" in lazy


def test_macros_value() -> None:
    out = (
        env()
        .from_string(
            '{% import "dashboard/_macros.html" as m %}'
            "{{ m.value(1234) }}|{{ m.value(1234, 'number') }}|{{ m.value(12.34, 'percent') }}|"
            "{{ m.value(75, 'duration') }}|{{ m.value(1999, 'money') }}|"
            "{{ m.external_link('javascript:x') }}|"
            "{{ m.bar(5, 0) }}"
        )
        .render()
    )
    assert out == (
        "1.2k|1,234|12.3%|1m 15s|19.99||"
        '<svg class="op-table__bar" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true" '
        'focusable="false"><rect width="0.0" height="1"/></svg>'
    )


# ------------------------------------------------------------------------------------------ real Chromium


# What the desktop test reads from the rendered page (JS, evaluated by tests/js/screenshot_page.mjs).
PAGE_CHECKS = """({
  xss: window.__xss === undefined ? null : window.__xss,
  jsHrefs: [...document.querySelectorAll('[href]')]
    .filter(a => /^\\s*javascript:/i.test(a.getAttribute('href'))).length,
  dataHrefs: [...document.querySelectorAll('[href]')]
    .filter(a => /^\\s*data:/i.test(a.getAttribute('href'))).length,
  scripts: document.scripts.length,
  handlers: [...document.querySelectorAll('*')]
    .filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
  buckets: document.querySelectorAll('.op-chart__bucket').length,
  shaded: document.querySelectorAll('path.op-map__c--5').length,
  extLinks: [...document.querySelectorAll('a.op-ext')].map(a => a.getAttribute('href')),
  lineWidth: document.querySelector('.op-chart__line').getBoundingClientRect().width,
  mapFill: getComputedStyle(document.querySelector('[data-country=US]')).fill,
  blankFill: getComputedStyle(document.querySelector('[data-country=FR]')).fill,
})"""

PHONE_CHECKS = """({
  scroll: document.documentElement.scrollWidth,
  cols: getComputedStyle(document.querySelector('.op-cards')).gridTemplateColumns.split(' ').length,
  bg: getComputedStyle(document.querySelector('.op-widget')).backgroundColor,
  xl: [...document.querySelectorAll('.op-chart--line .op-chart__xl text')]
    .filter(t => getComputedStyle(t).display !== 'none').length,
  xss: window.__xss === undefined ? null : 1,
})"""

TIP_TEXT = "document.querySelector('.op-tip') && document.querySelector('.op-tip').textContent"


def demo_page(tmp: Path) -> Path:
    """A static page with cards, chart, map and hostile tables, wired to the real CSS, htmx and chart.js."""
    labels = [f"Mar {d}" for d in range(1, 15)]
    values = [120, 180, 160, 240, 300, 280, 260, 310, 420, 390, 380, 450, 500, 470]
    prev = [100, 150, 170, 200, 210, 260, 240, 250, 300, 310, 280, 330, 360, 350]
    points = [Point(label, v) for label, v in zip(labels, values, strict=True)]
    points[3] = Point(XSS_SVG, 240)
    points[5] = Point(XSS_ATTR, 280)
    previous = [Point(f"Feb {d}", v) for d, v in zip(range(15, 29), prev, strict=True)]
    environment = env()
    chart = environment.get_template("dashboard/_chart.html").render(
        chart={
            "svg": line_chart(points, previous, label="Sessions"),
            "title": "Sessions",
            "previous_label": "Previous period",
        }
    )
    revenue = bar_chart(points[:7], previous[:7], value_format=formatting.money, label=XSS_IMG, height=160)
    geo = environment.get_template("dashboard/_map.html").render(
        geo_map={
            "id": "w-map",
            "title": "Countries",
            "svg": world_map({"SE": 1200, "US": 4800, "IN": 900, "BR": 600, "DE": 300, "AU": 100}),
        }
    )
    refs = [
        {**row, "url": url}
        for row, url in zip(
            HOSTILE_ROWS,
            [XSS_URL, "https://news.example/a", "data:text/html,<script>window.__xss=1</script>", None],
            strict=True,
        )
    ]
    table = environment.get_template("dashboard/_table.html").render(
        table={
            "id": "w-refs",
            "title": "Sources",
            "dimension": "Referrer",
            "rows": refs,
            "tabs": [
                {"label": "Refs", "url": "?tab=refs", "active": True},
                {"label": XSS_SCRIPT, "url": XSS_URL},
            ],
        }
    )
    lazy = environment.get_template("dashboard/_table.html").render(
        table={"id": "w-lazy", "title": "Devices", "lazy_url": "/never-served"}
    )
    head = (
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>visuals</title>"
        f'<link rel="stylesheet" href="{(STATIC / "css" / "base.css").as_uri()}">'
        f'<link rel="stylesheet" href="{(STATIC / "css" / "dashboard.css").as_uri()}">'
        f'<script src="{(STATIC / "vendor" / "htmx-2.0.11" / "htmx.min.js").as_uri()}"></script>'
        f'<script src="{(STATIC / "js" / "chart.js").as_uri()}" defer></script>'
    )
    revenue_widget = (
        f'<section class="op-widget"><h2 class="op-widget__title">Revenue</h2>{revenue}</section>'
    )
    page = (
        f'<!doctype html><html lang="en"><head>{head}</head><body><main class="op-dash">'
        f'<section class="op-widget" id="op-metrics">{render_cards()}{chart}</section>'
        f'<div class="op-widgets">{table}{geo}{revenue_widget}{lazy}</div></main></body></html>'
    )
    path = tmp / "visuals.html"
    path.write_text(page, encoding="utf-8")
    return path


def chromium(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    spec_path = tmp / f"spec-{len(list(tmp.glob('spec-*')))}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    result = subprocess.run(
        ["node", str(JS_DIR / "screenshot_page.mjs"), str(spec_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=JS_DIR,
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


needs_browser = pytest.mark.skipif(
    not (
        Path("/usr/bin/chromium").exists()
        and shutil.which("node")
        and (JS_DIR / "node_modules/playwright-core").exists()
    ),
    reason="needs /usr/bin/chromium, node and tests/js/node_modules (npm ci)",
)


@pytest.mark.browser
@needs_browser
def test_chromium_render_without_script_execution(tmp_path: Path) -> None:
    page = demo_page(tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    checks = PAGE_CHECKS
    out = chromium(
        {
            "url": page.as_uri(),
            "screenshot": str(ARTIFACTS / "visuals.png"),
            "width": 1200,
            "height": 900,
            "steps": [
                {"eval": checks, "as": "before"},
                {"hover": ".op-chart--line .op-chart__bucket:nth-child(4) .op-chart__hit"},
                {"sleep": 50},
                {
                    "eval": TIP_TEXT,
                    "as": "tip",
                },
                {"hover": ".op-table tbody tr:nth-child(2) .op-table__link"},
                {"hover": "[data-country=SE]"},
                {"sleep": 50},
                {"eval": checks, "as": "after"},
            ],
        },
        tmp_path,
    )
    assert out["pageErrors"] == [] and out["dialogs"] == []
    for state in ("before", "after"):
        named = out["named"][state]
        assert named["xss"] is None, "a payload ran"
        assert named["jsHrefs"] == 0 and named["dataHrefs"] == 0
        assert named["scripts"] == 2  # htmx and chart.js: nothing injected
        assert named["handlers"] == 0
        assert named["buckets"] == 14 + 7
        assert named["shaded"] == 1
        assert named["extLinks"] == ["https://news.example/a"]
        assert named["lineWidth"] > 900
        assert named["mapFill"] == "rgb(30, 58, 138)" and named["blankFill"] == "rgb(228, 228, 231)"
    # chart.js shows the bucket's <title> text as text (the hostile label stays inert).
    assert out["named"]["tip"] == f"{XSS_SVG}\nSessions: 240\nPrevious period (Feb 18): 200"
    # Nothing but local files (the lazy widget's request goes to file:///never-served, also local).
    assert all(url.startswith("file://") for url in out["requests"]), out["requests"]
    assert (ARTIFACTS / "visuals.png").stat().st_size > 10_000


@pytest.mark.browser
@needs_browser
def test_chromium_phone_width_dark(tmp_path: Path) -> None:
    page = demo_page(tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    out = chromium(
        {
            "url": page.as_uri(),
            "screenshot": str(ARTIFACTS / "visuals-360-dark.png"),
            "width": 360,
            "height": 780,
            "colorScheme": "dark",
            "steps": [
                {
                    "eval": PHONE_CHECKS,
                    "as": "layout",
                },
                {"eval": "document.querySelector('.op-table__link').focus()"},
                {
                    "eval": "getComputedStyle(document.querySelector('.op-table tbody tr')).outlineStyle",
                    "as": "focus",
                },
            ],
        },
        tmp_path,
    )
    layout = out["named"]["layout"]
    assert layout["scroll"] <= 360  # nothing wider than the phone: tables scroll inside their widget
    assert layout["cols"] == 2
    assert layout["bg"] == "rgb(22, 22, 28)"  # base.css dark card colour
    assert layout["xl"] == 4  # 14 buckets, 8 labels at the nominal width, every other one hidden
    assert layout["xss"] is None
    assert out["named"]["focus"] == "solid"
    assert out["pageErrors"] == [] and out["dialogs"] == []


KEY_STATE = """({
  tip: document.querySelector('.op-tip') && !document.querySelector('.op-tip').hidden
    ? document.querySelector('.op-tip').textContent : null,
  active: [...document.querySelectorAll('.op-chart__bucket.is-active')].map(
    b => [...b.parentNode.children].indexOf(b)),
  cursorShown: [...document.querySelectorAll('.op-chart__bucket.is-active .op-chart__cursor')]
    .map(c => getComputedStyle(c).visibility),
  announced: (document.querySelector('.op-live-region') || {}).textContent,
  focused: document.activeElement && document.activeElement.getAttribute('class'),
})"""


@pytest.mark.browser
@needs_browser
def test_chart_buckets_reachable_by_keyboard(tmp_path: Path) -> None:
    """One tab stop per chart; arrows, Home and End walk its buckets with the same tooltip text."""
    page = demo_page(tmp_path)
    line = ".op-chart--line"
    steps: list[dict[str, str | int]] = [
        {"eval": "[...document.querySelectorAll('svg.op-chart')].map(c => c.tabIndex)", "as": "tabindex"},
        {"focus": line},
        {"eval": KEY_STATE, "as": "focused"},
    ]
    for key, name in (
        ("ArrowRight", "first"),
        ("ArrowRight", "second"),
        ("End", "end"),
        ("ArrowRight", "past_end"),
        ("ArrowLeft", "back"),
        ("Home", "home"),
        ("Escape", "escape"),
    ):
        steps += [{"press": key}, {"eval": KEY_STATE, "as": name}]
    steps += [{"press": "End"}, {"focus": ".op-chart--bars"}, {"eval": KEY_STATE, "as": "blurred"}]
    steps += [{"press": "ArrowLeft"}, {"eval": KEY_STATE, "as": "bars_last"}]
    out = chromium({"url": page.as_uri(), "width": 1200, "height": 900, "steps": steps}, tmp_path)
    named = out["named"]
    assert out["pageErrors"] == []
    assert named["tabindex"] == [0, 0]  # both charts are in the tab order, once each
    assert named["focused"]["tip"] is None
    assert named["focused"]["focused"].startswith("op-chart op-chart--line")
    first = "Mar 1\nSessions: 120\nPrevious period (Feb 15): 100"
    assert named["first"]["tip"] == first
    assert named["first"]["active"] == [0] and named["first"]["cursorShown"] == ["visible"]
    assert named["first"]["announced"] == first
    assert named["second"]["tip"] == "Mar 2\nSessions: 180\nPrevious period (Feb 16): 150"
    last = "Mar 14\nSessions: 470\nPrevious period (Feb 28): 350"
    assert named["end"]["tip"] == last and named["end"]["active"] == [13]
    assert named["past_end"]["tip"] == last and named["past_end"]["active"] == [13]
    assert named["back"]["active"] == [12]
    assert named["home"]["active"] == [0]
    assert named["escape"]["tip"] is None and named["escape"]["active"] == []
    # Leaving the chart hides its tooltip; the bar chart then starts from its own last bucket.
    assert named["blurred"]["tip"] is None and named["blurred"]["active"] == []
    assert named["bars_last"]["active"] == [6]
    assert named["bars_last"]["tip"].startswith("Mar 7\n")
