"""The overview page /p/{project_id} (openpanel-facts §5.2) and its htmx partials.

    GET /p/{id}                        the page; for htmx (row clicks, chips, the range form) only the
                                       dashboard inside #op-dash, with HX-Push-Url set to the clean URL
    GET /p/{id}/_partials/metrics      the cards + chart section (a card click switches the metric)
    GET /p/{id}/_partials/w/{widget}   one widget (widgets.WIDGETS), loaded lazily or on a tab click
    GET /p/{id}/_partials/live         "N visitors in the last 5 minutes", polled every 10 s

All take the page's query string (urlstate.py), so each widget has a JSON twin in api/query_routes.py
built from the same OverviewQuery. The first widget (cards + chart) renders inline; the others arrive
with hx-trigger="load". A bad parameter gives a 400 whose body names it (the page's htmx config swaps
400s in, so the message shows where the content would have been). Non-members get 404 everywhere.

Metric, tabs and history: links are rendered once, but the chart's metric and the widgets' tabs may
have changed since (a card or tab click swaps one piece only). So an htmx request takes those from
the page the browser shows (HX-Current-URL), except the one piece it asks to change, and the rest
(range, filters) from its own URL; the answer's HX-Push-Url is the resulting view, so the address
bar always describes what is on screen.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from openpanel_lite.dashboard import overview_controls, overview_views
from openpanel_lite.dashboard.overview_views import Urls
from openpanel_lite.dashboard.session import Viewer, dashboard_router, is_htmx, project_access
from openpanel_lite.dashboard.urlstate import (
    FILTER_FORM_VALUE,
    FORM_KEY,
    FORM_VALUE,
    UrlState,
    from_controls,
    from_filter_form,
)
from openpanel_lite.dashboard.widgets import WIDGETS, tab_of
from openpanel_lite.meta.projects import Project
from openpanel_lite.query import Metric, ParamError, QueryError
from openpanel_lite.reports.live import Live
from openpanel_lite.reports.overview import Cards, OverviewQuery, Series
from openpanel_lite.reports.params import parse_metric, parse_overview, to_params
from openpanel_lite.reports.service import Reports
from openpanel_lite.reports.top import TopTable
from openpanel_lite.runtime import Runtime

AnyRequest = Request[Any, Any, Any]
# Every shape of /p/{id} depends on HX-Request, so caches must keep them apart.
VARY = {"Vary": "HX-Request, HX-Current-URL"}
NO_STORE = {"Cache-Control": "no-store"}


# ------------------------------------------------------------------------------------------------
# request -> state


def _is_fragment(request: AnyRequest) -> bool:
    """htmx asking for a piece; a history restore (back button, cache miss) needs the whole page."""
    return is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"


def _shown_state(request: AnyRequest, urls: Urls) -> UrlState | None:
    """The view the browser shows now (HX-Current-URL), when that is this project's overview."""
    current = request.headers.get("hx-current-url")
    if not current or not _is_fragment(request):
        return None
    try:
        path = urlsplit(current).path
    except ValueError:
        return None
    return UrlState.from_url(current) if path == urls.base else None


def _request_state(request: AnyRequest, project: Project, now: datetime) -> UrlState:
    """The view the request asks for; ParamError from the "add filter" form names its bad field."""
    params = to_params(request.query_params)
    forms = params.get(FORM_KEY) or ()
    if FORM_VALUE in forms:
        return from_controls(params, project.timezone, now)
    if FILTER_FORM_VALUE in forms:
        return from_filter_form(params)
    return UrlState.parse(params)


def _push_header(state: UrlState, shown: UrlState | None, urls: Urls, *, page: bool) -> dict[str, str]:
    """HX-Push-Url with the view `state` when it differs from what the browser shows; else "false"
    (which also stops an element's own hx-push-url from pushing a raw partial or form URL).

    When the shown view is unknown, a whole dashboard (`page`) is pushed, a single widget is not."""
    if shown is None:
        return {"HX-Push-Url": urls.page(state) if page else "false"}
    if state.pairs() == shown.pairs():
        return {"HX-Push-Url": "false"}
    return {"HX-Push-Url": urls.page(state)}


def _error_context(project: Project, urls: Urls, exc: QueryError) -> dict[str, Any]:
    param = exc.param if isinstance(exc, ParamError) else None
    message = exc.detail if isinstance(exc, ParamError) else str(exc)
    return {"project": project, "error": {"param": param, "message": message}, "reset_url": urls.base}


# ------------------------------------------------------------------------------------------------
# blocking report calls (run in a worker thread)


class PageData(NamedTuple):
    cards: Cards
    series: Series
    live: Live | None  # only the full dashboard shows the live counter


def _page_data(
    reports: Reports, project_id: str, q: OverviewQuery, metric: Metric, *, live: bool
) -> PageData:
    cards = reports.cards(project_id, q)
    series = reports.series(project_id, q, metric)
    return PageData(cards, series, reports.live_visitors(project_id) if live else None)


def _metrics_context(data: PageData, metric: Metric, state: UrlState, urls: Urls) -> dict[str, Any]:
    return {
        "metrics": overview_views.cards_context(data.cards, metric, state, urls),
        "chart": overview_views.chart_context(data.series),
    }


# ------------------------------------------------------------------------------------------------
# routes


@get("/p/{project_id:str}", include_in_schema=False)
async def overview_page(
    request: AnyRequest,
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template | Redirect:
    project = project_access(runtime, viewer, project_id)
    urls = Urls(project.id)
    now = datetime.now(UTC)
    fragment = _is_fragment(request)
    template = "overview/_dash.html" if fragment else "overview/page.html"
    base = {"viewer": viewer, "project": project}
    try:
        state = _request_state(request, project, now)
    except ParamError as e:
        # A bad "add filter" submission: the message, and a way back to the view it came from.
        context = {**base, **_error_context(project, urls, e)}
        context["back_url"] = urls.page(UrlState.parse(to_params(request.query_params)))
        return Template(template, context=context, status_code=400, headers={**VARY, "HX-Push-Url": "false"})
    shown = _shown_state(request, urls)
    if shown is not None:
        state = state.with_view_from(shown)
    headers = {**VARY, **(_push_header(state, shown, urls, page=True) if fragment else {})}
    try:
        q = parse_overview(state.params(), project.timezone, now)
        metric = parse_metric(state.metric)
        for name in WIDGETS:
            tab_of(name, state.tab(name))
    except QueryError as e:
        context = {**base, **_error_context(project, urls, e)}
        return Template(template, context=context, status_code=400, headers=headers)
    if not fragment and to_params(request.query_params).get(FORM_KEY):
        # The range form without JavaScript: go to the clean URL of the view it asked for.
        return Redirect(urls.page(state), status_code=303)
    reports = Reports.for_runtime(runtime)
    data = await asyncio.to_thread(functools.partial(_page_data, reports, project.id, q, metric, live=True))
    visitors = data.live.visitors if data.live else 0
    context = {
        **base,
        **_metrics_context(data, metric, state, urls),
        "controls": overview_controls.controls_context(state, q.period, urls, now),
        "live": {"visitors": visitors, "url": urls.live()},
        "widgets": [(WIDGETS[name].kind, overview_views.lazy_context(name, state, urls)) for name in WIDGETS],
    }
    return Template(template, context=context, headers=headers)


@get("/p/{project_id:str}/_partials/metrics", include_in_schema=False)
async def metrics_partial(
    request: AnyRequest,
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id)
    urls = Urls(project.id)
    now = datetime.now(UTC)
    state = UrlState.parse(to_params(request.query_params))
    shown = _shown_state(request, urls)
    if shown is not None:
        state = state.with_view_from(shown).with_metric(state.metric)
    try:
        q = parse_overview(state.params(), project.timezone, now)
        metric = parse_metric(state.metric)
    except QueryError as e:
        context = {**_error_context(project, urls, e), "section_id": "op-metrics", "title": "Metrics"}
        return Template("overview/_error_section.html", context=context, status_code=400)
    reports = Reports.for_runtime(runtime)
    data = await asyncio.to_thread(functools.partial(_page_data, reports, project.id, q, metric, live=False))
    headers = {**VARY, **_push_header(state, shown, urls, page=False)}
    return Template(
        "overview/_metrics.html", context=_metrics_context(data, metric, state, urls), headers=headers
    )


def _widget_context(
    name: str, table: TopTable, state: UrlState, urls: Urls, tab_key: str
) -> tuple[str, dict[str, Any]]:
    widget = WIDGETS[name]
    if widget.kind == "map":
        return "geo_map", overview_views.map_context(name, table)
    return "table", overview_views.table_context(name, tab_of(name, tab_key), table, state, urls)


@get("/p/{project_id:str}/_partials/w/{widget:str}", include_in_schema=False)
async def widget_partial(
    request: AnyRequest,
    runtime: NamedDependency[Runtime],
    viewer: NamedDependency[Viewer],
    project_id: FromPath[str],
    widget: FromPath[str],
) -> Template:
    project = project_access(runtime, viewer, project_id)
    if widget not in WIDGETS:
        raise NotFoundException("no such widget")
    urls = Urls(project.id)
    now = datetime.now(UTC)
    state = UrlState.parse(to_params(request.query_params))
    shown = _shown_state(request, urls)
    if shown is not None:
        # This widget's tab is what was asked for; the metric and other tabs are as on screen.
        asked = state.tab(widget) or WIDGETS[widget].tabs[0].key
        state = state.with_view_from(shown).with_tab(widget, asked)
    spec = WIDGETS[widget]
    try:
        q = parse_overview(state.params(), project.timezone, now)
        tab = tab_of(widget, state.tab(widget))
        reports = Reports.for_runtime(runtime)
        table = await asyncio.to_thread(reports.top, project.id, q, tab.report_table, spec.rows)
    except QueryError as e:
        context = {**_error_context(project, urls, e), "section_id": f"w-{widget}", "title": spec.title}
        return Template("overview/_error_section.html", context=context, status_code=400)
    name, context = _widget_context(widget, table, state, urls, tab.key)
    headers = {**VARY, **_push_header(state, shown, urls, page=False)}
    return Template(spec.template, context={name: context}, headers=headers)


@get("/p/{project_id:str}/_partials/live", include_in_schema=False)
async def live_partial(
    runtime: NamedDependency[Runtime], viewer: NamedDependency[Viewer], project_id: FromPath[str]
) -> Template:
    project = project_access(runtime, viewer, project_id)
    live = await asyncio.to_thread(Reports.for_runtime(runtime).live_visitors, project.id)
    context = {"live": {"visitors": live.visitors, "url": Urls(project.id).live()}}
    return Template("overview/_live.html", context=context, headers=NO_STORE)


router = dashboard_router([overview_page, metrics_partial, widget_partial, live_partial])
