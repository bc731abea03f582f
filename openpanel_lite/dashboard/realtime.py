"""The realtime page (openpanel-facts §5.3): GET /p/{id}/realtime renders from the store, and
GET /p/{id}/realtime/stream keeps it current over Server-Sent Events (dashboard/realtime_stream.py).

The stream's messages carry HTML partials rendered here with the app's Jinja environment (autoescape on),
the same templates the page includes; web/static/js/realtime.js swaps them in with htmx.swap.
"""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import ServerSentEvent, Template

from openpanel_lite.dashboard.charts import Point, bar_chart
from openpanel_lite.dashboard.explorer_links import Links
from openpanel_lite.dashboard.formatting import number
from openpanel_lite.dashboard.realtime_stream import RealtimeStream
from openpanel_lite.dashboard.session import Viewer, dashboard_router, project_access
from openpanel_lite.meta.projects import Project
from openpanel_lite.reports.events import EventItem
from openpanel_lite.reports.realtime import Realtime, RealtimeRow, realtime
from openpanel_lite.reports.service import Reports
from openpanel_lite.runtime import Runtime

_NO_STORE = {"Cache-Control": "no-store"}


def read_realtime(runtime: Runtime, project: Project) -> Realtime:
    """Blocking: every realtime widget from the store, through the shared report cache."""
    return realtime(Reports.for_runtime(runtime).reader, project.id, project.timezone)


def _rows(links: Links, field: str, rows: list[RealtimeRow], page_urls: bool = False) -> list[dict[str, Any]]:
    """RealtimeRows as dashboard/_table.html rows; a click opens the event list filtered by the value."""
    out = []
    for row in rows:
        out.append(
            {
                "name": row.name or "Unknown",
                "filter_url": links.events_where(field, "is", row.value)
                if row.value
                else links.events_where(field, "isNull"),
                "url": row.name if page_urls else None,
                "sessions": row.sessions,
                "events": row.events,
            }
        )
    return out


def stats_context(project: Project, rt: Realtime) -> dict[str, Any]:
    """What realtime/_stats.html needs: the numbers, the histogram SVG and three tables."""
    links = Links(project.id)
    sessions = [Point(m.minute.strftime("%H:%M"), m.sessions) for m in rt.minutes]
    visitors = [Point(m.minute.strftime("%H:%M"), m.visitors) for m in rt.minutes]
    chart = {
        "id": "rt-chart",
        "title": "Sessions and visitors per minute, last 30 minutes",
        "current_label": "Sessions",
        "previous_label": "Visitors",
        "svg": bar_chart(
            sessions, visitors, height=180, label="Sessions", previous_label="Visitors", value_format=number
        ),
    }
    columns = [
        {"key": "sessions", "label": "Sessions", "format": "number"},
        {"key": "events", "label": "Events", "format": "number"},
    ]
    views = [columns[0], {"key": "events", "label": "Views", "format": "number"}]
    tables = [
        {
            "id": "rt-countries",
            "title": "Countries",
            "dimension": "Country",
            "rows": _rows(links, "country", rt.countries),
            "columns": columns,
            "empty_text": "No visitors in the last 30 minutes",
        },
        {
            "id": "rt-referrers",
            "title": "Referrers",
            "dimension": "Referrer",
            "rows": _rows(links, "referrer_name", rt.referrers),
            "columns": columns,
            "empty_text": "No referred visits in the last 30 minutes",
        },
        {
            "id": "rt-paths",
            "title": "Pages",
            "dimension": "Page",
            "rows": _rows(links, "path", rt.paths, page_urls=True),
            "columns": views,
            "empty_text": "No page views in the last 30 minutes",
        },
    ]
    return {"project": project, "links": links, "rt": rt, "chart": chart, "tables": tables}


def feed_context(project: Project, feed: list[EventItem]) -> dict[str, Any]:
    return {"project": project, "links": Links(project.id), "feed": feed}


@get("/p/{project_id:str}/realtime", include_in_schema=False)
async def realtime_page(
    runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: FromPath[str]
) -> Template:
    project = project_access(runtime, viewer, project_id)
    rt = await asyncio.to_thread(read_realtime, runtime, project)
    context = stats_context(project, rt) | feed_context(project, rt.feed)
    context |= {"viewer": viewer, "stream_url": f"{Links(project.id).base}/realtime/stream"}
    return Template("realtime/page.html", context=context, headers=_NO_STORE)


@get("/p/{project_id:str}/realtime/stream", include_in_schema=False)
async def realtime_events(
    request: Request[Any, Any, Any],
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> ServerSentEvent:
    project = project_access(runtime, viewer, project_id)
    engine = request.app.template_engine
    if engine is None:
        raise RuntimeError("the app has no template engine")

    def render(partial: str, stats: Realtime | None, feed: list[EventItem]) -> str:
        context = stats_context(project, stats) if stats is not None else feed_context(project, feed)
        return str(engine.get_template(f"realtime/_{partial}.html").render(**context))

    stream = RealtimeStream(
        runtime, project.id, ZoneInfo(project.timezone), lambda: read_realtime(runtime, project), render
    )
    return ServerSentEvent(stream.messages(), headers=_NO_STORE)


router = dashboard_router([realtime_page, realtime_events])
