"""The overview's header: range and interval selects, custom dates, filter chips (openpanel-facts §5.2,
§5.10). Only intervals the range allows are offered, so the select can never produce a 400."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

from openpanel_lite.dashboard.overview_views import MONTHS, Urls
from openpanel_lite.dashboard.urlstate import (
    FILTER_FORM_VALUE,
    FORM_KEY,
    FORM_VALUE,
    PERIOD_KEYS,
    PROPERTY_FIELD,
    UrlState,
)
from openpanel_lite.dashboard.widgets import field_label, value_label
from openpanel_lite.dates import Period, RangeName, resolve_period
from openpanel_lite.query import Dimension, Filter, FilterOperator, Interval, ParamError
from openpanel_lite.reports.params import parse_filters

RANGE_LABELS: dict[RangeName, str] = {
    RangeName.MIN_30: "Last 30 minutes",
    RangeName.LAST_HOUR: "Last hour",
    RangeName.LAST_24H: "Last 24 hours",
    RangeName.TODAY: "Today",
    RangeName.YESTERDAY: "Yesterday",
    RangeName.DAYS_7: "Last 7 days",
    RangeName.DAYS_30: "Last 30 days",
    RangeName.MONTHS_3: "Last 3 months",
    RangeName.MONTHS_6: "Last 6 months",
    RangeName.MONTHS_12: "Last 12 months",
    RangeName.MONTH_TO_DATE: "Month to date",
    RangeName.LAST_MONTH: "Last month",
    RangeName.YEAR_TO_DATE: "Year to date",
    RangeName.LAST_YEAR: "Last year",
    RangeName.CUSTOM: "Custom dates",
}
INTERVAL_LABELS: dict[Interval, str] = {
    Interval.MINUTE: "Minute",
    Interval.HOUR: "Hour",
    Interval.DAY: "Day",
    Interval.WEEK: "Week",
    Interval.MONTH: "Month",
}
OPERATOR_LABELS: dict[FilterOperator, str] = {
    FilterOperator.IS: "is",
    FilterOperator.IS_NOT: "is not",
    FilterOperator.CONTAINS: "contains",
    FilterOperator.DOES_NOT_CONTAIN: "does not contain",
    FilterOperator.STARTS_WITH: "starts with",
    FilterOperator.ENDS_WITH: "ends with",
    FilterOperator.REGEX: "matches",
    FilterOperator.IS_NULL: "is not set",
    FilterOperator.IS_NOT_NULL: "is set",
    FilterOperator.GT: ">",
    FilterOperator.LT: "<",
    FilterOperator.GTE: "≥",
    FilterOperator.LTE: "≤",
}


class Option(NamedTuple):
    value: str
    label: str
    selected: bool


class Chip(NamedTuple):
    field: str
    operator: str
    value: str  # "" for operators without a value
    remove_url: str


def allowed_intervals(period: Period, now: datetime) -> list[Interval]:
    """The intervals this period can be drawn in: dates.resolve_period accepts exactly these."""
    out = []
    for interval in Interval:
        try:
            resolve_period(
                period.range,
                period.timezone,
                now,
                interval=interval,
                start=period.current.start,
                end=period.current.end,
            )
        except ParamError:
            continue
        out.append(interval)
    return out


def _day(d: date, with_year: bool) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}" + (f", {d.year}" if with_year else "")


def period_label(period: Period) -> str:
    """Like "Mar 10 – Mar 16, 2025" or "Mar 10, 2025"; with times for ranges that are not whole days."""
    start, end = period.current.start, period.current.end
    if start.time() == time(0) and end.time() == time(0):
        last = (end - timedelta(days=1)).date()
        if last == start.date():
            return _day(last, True)
        return f"{_day(start.date(), start.year != last.year)} – {_day(last, True)}"
    if start.date() == end.date():
        return f"{_day(start.date(), True)}, {start:%H:%M} – {end:%H:%M}"
    return f"{_day(start.date(), False)} {start:%H:%M} – {_day(end.date(), True)} {end:%H:%M}"


def date_inputs(period: Period) -> tuple[str, str]:
    """The custom range's date fields, pre-filled with the period shown (the end date is inclusive)."""
    start, end = period.current.start, period.current.end
    last = (end - timedelta(days=1)).date() if end.time() == time(0) and end > start else end.date()
    return start.date().isoformat(), last.isoformat()


def _chip(state: UrlState, urls: Urls, f: Filter, remove: UrlState) -> Chip:
    values = " or ".join(value_label(f.field, v) for v in f.values)
    return Chip(field_label(f.field), OPERATOR_LABELS[f.operator], values, urls.page(remove))


def chips(state: UrlState, urls: Urls) -> list[Chip]:
    """One chip per filter, each with a link to the same view without it. Call with a valid state."""
    out = []
    for raw in state.filters:
        for f in parse_filters({"f": [raw]}):
            out.append(_chip(state, urls, f, state.without_filter(raw)))
    raw_json = state.get("filters")
    if raw_json:
        for i, f in enumerate(parse_filters({"filters": [raw_json]})):
            out.append(_chip(state, urls, f, state.without_json_filter(i)))
    return out


def controls_context(state: UrlState, period: Period, urls: Urls, now: datetime) -> dict[str, Any]:
    """_filters.html: the form (range, custom dates, interval), the period in words, the chips."""
    start, end = date_inputs(period)
    found = chips(state, urls)
    # The form sends the rest of the view along, so changing the range keeps filters, metric, tabs.
    hidden = [(FORM_KEY, FORM_VALUE), *((k, v) for k, v in state.pairs() if k not in PERIOD_KEYS)]
    return {
        "action": urls.base,
        "filter_form": filter_form_context(state),
        "ranges": [Option(r.value, label, r is period.range) for r, label in RANGE_LABELS.items()],
        "intervals": [
            Option(i.value, INTERVAL_LABELS[i], i is period.interval) for i in allowed_intervals(period, now)
        ],
        "start": start,
        "end": end,
        "custom": period.range is RangeName.CUSTOM,
        "hidden": hidden,
        "period": period_label(period),
        "timezone": period.timezone,
        "chips": found,
        "clear_url": urls.page(state.without_filters()) if len(found) > 1 else None,
    }


def filter_form_context(state: UrlState) -> dict[str, Any]:
    """The "add filter" form: every field a row click could filter on, event properties by name, and
    the operators in the chips' words. Hidden fields carry the whole view along."""
    fields = [Option(d.value, field_label(d), False) for d in Dimension]
    fields.sort(key=lambda option: option.label.lower())
    return {
        "hidden": [(FORM_KEY, FILTER_FORM_VALUE), *state.pairs()],
        "fields": [*fields, Option(PROPERTY_FIELD, "Event property…", False)],
        "operators": [Option(op.value, label, False) for op, label in OPERATOR_LABELS.items()],
    }
