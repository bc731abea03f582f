"""Report results -> the contexts of the overview's templates (cards, chart, tables, map).

Plain functions over the report Structs and the URL state, so the numbers the page shows are the
numbers the reports return, only formatted (by the templates' filters). Every link is built here
from UrlState; values from tracked events only ever go into query strings (percent-encoded) or text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import quote

from markupsafe import Markup

from openpanel_lite.dashboard.charts import Point, bar_chart, line_chart
from openpanel_lite.dashboard.formatting import compact_number, duration, money, percent
from openpanel_lite.dashboard.urlstate import UrlState, filter_param
from openpanel_lite.dashboard.widgets import WIDGETS, Tab, Widget, field_of, value_label
from openpanel_lite.dashboard.worldmap import world_map
from openpanel_lite.query import Dimension, Interval, Metric
from openpanel_lite.reports.overview import Cards, Series
from openpanel_lite.reports.top import LINK_OUT, TopRow, TopTable

DASH_TARGET = "#op-dash"  # row clicks and chips swap the whole dashboard (every widget gets the filter)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CHART_HEIGHT = 240


class Urls:
    """The overview's URLs for one project: the page and its partials."""

    def __init__(self, project_id: str) -> None:
        self.base = f"/p/{quote(project_id, safe='')}"

    def page(self, state: UrlState) -> str:
        return state.url(self.base)

    def metrics(self, state: UrlState) -> str:
        return state.url(f"{self.base}/_partials/metrics")

    def widget(self, name: str, state: UrlState) -> str:
        return state.url(f"{self.base}/_partials/w/{name}")

    def live(self) -> str:
        return f"{self.base}/_partials/live"


# ------------------------------------------------------------------------------------------------
# metric cards and the chart


class MetricView(NamedTuple):
    label: str
    format: str  # a _macros.value kind
    value_format: Callable[[float], str]  # chart ticks and tooltips
    inverse: bool = False  # lower is better
    whole_numbers: bool = True


METRIC_VIEWS: dict[Metric, MetricView] = {
    Metric.UNIQUE_VISITORS: MetricView("Unique visitors", "number", compact_number),
    Metric.SESSIONS: MetricView("Sessions", "number", compact_number),
    Metric.PAGEVIEWS: MetricView("Pageviews", "number", compact_number),
    Metric.VIEWS_PER_SESSION: MetricView("Pages per session", "compact", compact_number, whole_numbers=False),
    Metric.BOUNCE_RATE: MetricView("Bounce rate", "percent", percent, inverse=True, whole_numbers=False),
    Metric.AVG_SESSION_DURATION: MetricView("Session duration", "duration", duration),
    Metric.REVENUE: MetricView("Revenue", "money", money),
}


def cards_context(cards: Cards, chosen: Metric, state: UrlState, urls: Urls) -> dict[str, Any]:
    """_cards.html: one card per metric, each switching the chart (the whole #op-metrics section)."""
    out = []
    for card in cards.cards:
        view = METRIC_VIEWS[card.metric]
        target = state.with_metric(card.metric.value)
        out.append(
            {
                "key": card.metric.value,
                "label": view.label,
                "value": card.value,
                "previous": card.previous,
                "format": view.format,
                "inverse": view.inverse,
                "url": urls.page(target),
                "hx_url": urls.metrics(target),
                "active": card.metric is chosen,
            }
        )
    return {"cards": out}


def bucket_label(at: datetime, interval: Interval, with_day: bool) -> str:
    """Labels like "Mar 3", "14:00" (or "Mar 3 14:00" when the chart spans days), "Mar 2025"."""
    day = f"{MONTHS[at.month - 1]} {at.day}"
    if interval in (Interval.MINUTE, Interval.HOUR):
        return f"{day} {at:%H:%M}" if with_day else f"{at:%H:%M}"
    if interval is Interval.MONTH:
        return f"{MONTHS[at.month - 1]} {at.year}"
    return day


def chart_context(series: Series) -> dict[str, Any]:
    """_chart.html: the metric per bucket, the previous period dashed (revenue as bars)."""
    view = METRIC_VIEWS[series.metric]
    spans_days = series.current.end - series.current.start > timedelta(days=1)
    points = [Point(bucket_label(p.time, series.interval, spans_days), float(p.value)) for p in series.points]
    # The previous period's buckets fall on other days, so short intervals always name the day there.
    previous = [
        Point(bucket_label(p.previous_time, series.interval, True), float(p.previous))
        for p in series.points
        if p.previous_time is not None and p.previous is not None
    ]
    draw = bar_chart if series.metric is Metric.REVENUE else line_chart
    svg: Markup = draw(
        points,
        previous,
        height=CHART_HEIGHT,
        value_format=view.value_format,
        label=view.label,
        whole_numbers=view.whole_numbers,
    )
    return {"svg": svg, "title": view.label, "current_label": view.label, "previous_label": "Previous period"}


# ------------------------------------------------------------------------------------------------
# tables and the map

_COLUMNS: dict[str, dict[str, str]] = {
    "sessions": {"key": "sessions", "label": "Sessions", "format": "number"},
    "pageviews": {"key": "pageviews", "label": "Pageviews", "format": "number"},
    "revenue": {"key": "revenue", "label": "Revenue", "format": "money"},
    "count": {"key": "count", "label": "Events", "format": "number"},
    # The pages table (reports/top.py): seconds to the next page view; bounce % of entries there.
    "avg_duration": {"key": "avg_duration", "label": "Avg. time", "format": "duration"},
    "bounce_rate": {"key": "bounce_rate", "label": "Bounce rate", "format": "percent"},
}
# Where the row's value alone would be ambiguous, its parent (from TopRow.prefix) is shown too.
_WITH_PREFIX_BEFORE = frozenset({Dimension.BROWSER_VERSION, Dimension.OS_VERSION})
_WITH_PREFIX_AFTER = frozenset({Dimension.REGION, Dimension.CITY})
_PAGE_FIELDS = frozenset({Dimension.PATH, Dimension.ENTRY_PATH, Dimension.EXIT_PATH})


def filter_field(table: TopTable) -> str:
    """The field a click on one of the table's rows filters by."""
    return "properties.href" if table.table == LINK_OUT else table.table


def row_name(field: str, row: TopRow) -> str:
    parsed = field_of(field)
    if parsed is None:
        return row.name
    name = value_label(parsed, row.name)
    if row.name and row.prefix:
        if parsed in _WITH_PREFIX_BEFORE:
            return f"{row.prefix} {row.name}"
        if parsed in _WITH_PREFIX_AFTER:
            return f"{row.name}, {row.prefix}"
    return name


def row_link(field: str, row: TopRow) -> str | None:
    """An outside URL for the row's ↗ link (the template keeps only http(s) ones)."""
    parsed = field_of(field)
    if parsed is Dimension.REFERRER or field == "properties.href":
        return row.name or None
    if parsed in _PAGE_FIELDS and row.prefix and row.name:
        return row.prefix + row.name
    return None


def table_context(name: str, tab: Tab, table: TopTable, state: UrlState, urls: Urls) -> dict[str, Any]:
    """_table.html for widget `name` showing `tab`; a row click adds its value as a filter chip."""
    widget = WIDGETS[name]
    field = filter_field(table)
    rows = [
        {
            "name": row_name(field, row),
            "filter_url": urls.page(state.with_filter(filter_param(field, row.name))),
            "url": row_link(field, row),
            "sessions": row.sessions,
            "pageviews": row.pageviews,
            "revenue": row.revenue,
            "count": row.count,
            "avg_duration": row.avg_duration,
            "bounce_rate": row.bounce_rate,
        }
        for row in table.rows
    ]
    columns = [_COLUMNS[c] for c in table.columns]
    # Revenue only where some row has any (upstream shows the column only then).
    if not any(row.revenue for row in table.rows):
        columns = [c for c in columns if c["key"] != "revenue"]
    return {
        "id": f"w-{name}",
        "title": widget.title,
        "dimension": tab.heading,
        "rows": rows,
        "columns": columns,
        "tabs": tabs_context(name, widget, tab, state, urls),
        "hx_target": DASH_TARGET,
    }


def tabs_context(name: str, widget: Widget, active: Tab, state: UrlState, urls: Urls) -> list[dict[str, Any]]:
    if len(widget.tabs) < 2:
        return []
    out = []
    for tab in widget.tabs:
        target = state.with_tab(name, tab.key)
        out.append(
            {
                "label": tab.label,
                "url": urls.widget(name, target),
                "href": urls.page(target),
                "active": tab.key == active.key,
            }
        )
    return out


def map_context(name: str, table: TopTable) -> dict[str, Any]:
    """_map.html: sessions per country code."""
    values = {row.name: float(row.sessions) for row in table.rows if row.name}
    return {"id": f"w-{name}", "title": WIDGETS[name].title, "svg": world_map(values, label="Sessions")}


def lazy_context(name: str, state: UrlState, urls: Urls) -> dict[str, Any]:
    """The placeholder of a widget that loads itself (hx-trigger="load") with a skeleton meanwhile."""
    return {"id": f"w-{name}", "title": WIDGETS[name].title, "lazy_url": urls.widget(name, state)}
