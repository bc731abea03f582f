"""The overview's state lives in its query string, so any view can be bookmarked and shared:

    range=7d&interval=day&start=…&end=…       the period (reports/params.py parses it)
    f=country,is,GB&f=path,startsWith,/blog   filter chips, one each, ANDed
    filters=[{"name": …}]                     upstream's JSON filters (shown as chips too)
    metric=sessions                           the chart's metric (default: unique visitors)
    sources=utm_campaign&pages=entry …        each widget's tab (default: its first tab)

UrlState holds these in a canonical order and builds the links that change one thing (add or remove
a filter, switch the metric or a tab) while keeping the rest. Unknown parameters are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import msgspec

from openpanel_lite.dashboard.widgets import WIDGETS
from openpanel_lite.query import Dimension, FilterOperator, FilterValue, ParamError
from openpanel_lite.reports.params import parse_filters, parse_overview

PERIOD_KEYS = ("range", "interval", "start", "end")
FILTER_KEY = "f"
JSON_FILTERS_KEY = "filters"
METRIC_KEY = "metric"
DEFAULT_METRIC = "unique_visitors"
# The range/interval form adds this, so that the server may tidy what a form cannot (see from_controls).
FORM_KEY = "from"
FORM_VALUE = "controls"
# The "add filter" form: field (a Dimension value, or PROPERTY_FIELD with the key in FILTER_PROPERTY),
# operator and value. Its submission becomes one more `f` (see from_filter_form).
FILTER_FORM_VALUE = "filter"
FILTER_FIELD, FILTER_PROPERTY, FILTER_OPERATOR, FILTER_VALUE = "fk", "fp", "fo", "fv"
PROPERTY_FIELD = "property"
_SINGLE_KEYS = (*PERIOD_KEYS, JSON_FILTERS_KEY, METRIC_KEY, *WIDGETS)
# What one htmx swap changes without re-rendering the rest: the chart's metric, a widget's tab.
VIEW_KEYS = (METRIC_KEY, *WIDGETS)
# Commas, slashes and colons stay readable in links (f=path,is,/blog); everything else is escaped.
_SAFE = ",/:"

Params = Mapping[str, Sequence[str]]


def _last(params: Params, name: str) -> str:
    values = params.get(name) or ()
    return values[-1] if values else ""


@dataclass(frozen=True, slots=True)
class UrlState:
    """One overview view. `single` maps each one-valued key to its (non-empty) value."""

    single: tuple[tuple[str, str], ...] = ()
    filters: tuple[str, ...] = ()  # the raw `f` values, in the order they were added

    # ---- reading

    @classmethod
    def parse(cls, params: Params) -> UrlState:
        """From a query string's {name: [values]}: the last value of one-valued keys, every `f` once."""
        single = tuple((key, value) for key in _SINGLE_KEYS if (value := _last(params, key)))
        filters = tuple(dict.fromkeys(v for v in params.get(FILTER_KEY) or () if v))
        return cls(single, filters)

    @classmethod
    def from_url(cls, url: str) -> UrlState:
        return cls.parse(parse_qs(urlsplit(url).query))

    def get(self, key: str) -> str:
        return dict(self.single).get(key, "")

    @property
    def metric(self) -> str:
        return self.get(METRIC_KEY) or DEFAULT_METRIC

    def tab(self, widget: str) -> str:
        return self.get(widget)

    def params(self) -> dict[str, list[str]]:
        """As {name: [values]}, the shape reports/params.py parses."""
        out: dict[str, list[str]] = {key: [value] for key, value in self.single}
        if self.filters:
            out[FILTER_KEY] = list(self.filters)
        return out

    def pairs(self) -> list[tuple[str, str]]:
        """Canonical order: period, filters, JSON filters, metric, tabs."""
        single = dict(self.single)
        head = [(k, single[k]) for k in PERIOD_KEYS if k in single]
        tail = [(k, single[k]) for k in (JSON_FILTERS_KEY, METRIC_KEY, *WIDGETS) if k in single]
        return [*head, *((FILTER_KEY, f) for f in self.filters), *tail]

    def query(self) -> str:
        return urlencode(self.pairs(), quote_via=quote, safe=_SAFE)

    def url(self, path: str) -> str:
        """`path` with this state's query string (none when the state is all defaults)."""
        qs = self.query()
        return f"{path}?{qs}" if qs else path

    # ---- changing one thing

    def set(self, key: str, value: str) -> UrlState:
        """With `key` set to `value` (an empty value removes it)."""
        kept = tuple((k, v) for k, v in self.single if k != key)
        single = (*kept, (key, value)) if value else kept
        return replace(self, single=single)

    def without(self, *keys: str) -> UrlState:
        return replace(self, single=tuple((k, v) for k, v in self.single if k not in keys))

    def with_metric(self, metric: str) -> UrlState:
        return self.set(METRIC_KEY, "" if metric == DEFAULT_METRIC else metric)

    def with_tab(self, widget: str, key: str) -> UrlState:
        default = WIDGETS[widget].tabs[0].key
        return self.set(widget, "" if key == default else key)

    def with_view_from(self, other: UrlState) -> UrlState:
        """The metric and every widget's tab as in `other` (the page the browser shows), the rest as here."""
        state = self.without(*VIEW_KEYS)
        for key in VIEW_KEYS:
            state = state.set(key, other.get(key))
        return state

    def with_filter(self, raw: str) -> UrlState:
        """With the filter `field,operator[,value]` added (once)."""
        if raw in self.filters:
            return self
        return replace(self, filters=(*self.filters, raw))

    def without_filter(self, raw: str) -> UrlState:
        return replace(self, filters=tuple(f for f in self.filters if f != raw))

    def without_json_filter(self, index: int) -> UrlState:
        """Without item `index` of the JSON `filters` list (the key goes when the list is empty)."""
        items = msgspec.json.decode(self.get(JSON_FILTERS_KEY) or "[]")
        if not isinstance(items, list):
            return self.without(JSON_FILTERS_KEY)
        rest = [item for i, item in enumerate(items) if i != index]
        return self.set(JSON_FILTERS_KEY, msgspec.json.encode(rest).decode() if rest else "")

    def without_filters(self) -> UrlState:
        return replace(self.without(JSON_FILTERS_KEY), filters=())


def filter_param(field: str, value: FilterValue) -> str:
    """The `f` value of "field is value"; an empty value means "is not set"."""
    if value is None or value == "":
        return f"{field},isNull"
    return f"{field},is,{value}"


def from_controls(params: Params, timezone: str, now: datetime) -> UrlState:
    """The state a submission of the range/interval form asks for.

    A form always sends every field, so: the custom dates count only with range=custom, and an
    interval the new range does not allow (minutes after switching to 30 days) gives way to the
    range's default instead of an error; the default itself is left out of the URL. Hand-written
    URLs get no such help (they get a 400).
    """
    state = UrlState.parse(params)
    if state.get("range") != "custom":
        state = state.without("start", "end")
    try:
        parse_overview(state.params(), timezone, now)
    except ParamError as e:
        if e.param == "interval":
            state = state.without("interval")
    try:
        default = parse_overview(state.without("interval").params(), timezone, now).period.interval
    except ParamError:
        return state  # another bad value: the page names it
    return state.without("interval") if state.get("interval") == default else state


def from_filter_form(params: Params) -> UrlState:
    """The view plus the filter the "add filter" form describes; ParamError names the bad field.

    The form's own fields are not part of the state (UrlState.parse drops them), only the `f` built
    from them, so the resulting URL is the same as a row click's.
    """
    state = UrlState.parse(params)
    field = _last(params, FILTER_FIELD)
    if field == PROPERTY_FIELD:
        key = _last(params, FILTER_PROPERTY).strip()
        if not key:
            raise ParamError(FILTER_PROPERTY, "name the event property to filter on")
        if "," in key:
            raise ParamError(FILTER_PROPERTY, "a property name cannot contain a comma")
        name = f"properties.{key}"
    else:
        try:
            name = Dimension(field).value
        except ValueError:
            raise ParamError(FILTER_FIELD, f"unknown field {field!r}") from None
    try:
        operator = FilterOperator(_last(params, FILTER_OPERATOR) or FilterOperator.IS.value)
    except ValueError:
        raise ParamError(FILTER_OPERATOR, "unknown operator") from None
    if operator in (FilterOperator.IS_NULL, FilterOperator.IS_NOT_NULL):
        raw = f"{name},{operator.value}"
    else:
        value = _last(params, FILTER_VALUE)
        if not value.strip():
            raise ParamError(FILTER_VALUE, "enter a value to compare with")
        raw = f"{name},{operator.value},{value}"
    try:
        parse_filters({FILTER_KEY: [raw]})
    except ParamError as e:
        raise ParamError(FILTER_VALUE, e.detail) from None
    return state.with_filter(raw)
