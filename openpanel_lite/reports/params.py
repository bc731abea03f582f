"""The dashboard's URL query string -> OverviewQuery, shared by the overview page and its JSON twins.

    range=30d&interval=day                      dates.parse_period (start/end for custom ranges)
    f=country,is,SE&f=path,startsWith,/blog     one filter each: field,operator[,value]
    filters=[{"name":"country","operator":"is","value":["SE","NO"]}]   upstream's JSON form

Filters AND together; the several values of one JSON filter OR together. Errors are ParamError
naming the parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from openpanel_lite.dates import parse_period
from openpanel_lite.query import (
    Filter,
    FilterOperator,
    FilterValue,
    Metric,
    ParamError,
    QueryError,
    parse_field,
)
from openpanel_lite.reports.overview import CARD_METRICS, OverviewQuery

Params = Mapping[str, Sequence[str]]
_VALUELESS = (FilterOperator.IS_NULL, FilterOperator.IS_NOT_NULL)
_NUMERIC = (FilterOperator.GT, FilterOperator.LT, FilterOperator.GTE, FilterOperator.LTE)


class _JsonFilter(msgspec.Struct, frozen=True):
    name: str
    operator: str
    value: list[FilterValue] | FilterValue = msgspec.field(default_factory=list)


def _last(params: Params, name: str) -> str | None:
    values = params.get(name) or ()
    return values[-1] if values else None


def _operator(raw: str, param: str) -> FilterOperator:
    try:
        return FilterOperator(raw)
    except ValueError:
        choices = ", ".join(o.value for o in FilterOperator)
        raise ParamError(param, f"unknown operator {raw!r}; one of {choices}") from None


def _filter(param: str, field: str, operator: str, values: tuple[FilterValue, ...]) -> Filter:
    try:
        parsed = parse_field(field)
    except QueryError as e:
        raise ParamError(param, str(e)) from None
    op = _operator(operator, param)
    if op not in _VALUELESS and not values:
        raise ParamError(param, f"{op} on {field} needs a value")
    if op in _NUMERIC:
        for value in values:
            if not _is_number(value):
                raise ParamError(param, f"{op} on {field} compares numbers; {value!r} is not one")
    if op is FilterOperator.REGEX:
        for value in values:
            _check_regex(param, str(value))
    return Filter(parsed, op, () if op in _VALUELESS else values)


def _is_number(value: FilterValue) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


# RE2 (DuckDB and ClickHouse) has no lookaround, backreferences or atomic groups; Python's re would
# accept them, and the store would then fail the whole query.
_NOT_RE2 = re.compile(r"\(\?(?:[=!>]|<[=!])|\\[1-9Z]")


def _check_regex(param: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ParamError(param, f"not a valid regular expression: {e}") from None
    if _NOT_RE2.search(pattern):
        raise ParamError(param, "lookarounds, backreferences and \\Z are not supported (RE2 syntax)")


def parse_filters(params: Params) -> tuple[Filter, ...]:
    """Every `f=field,operator,value` (the value may contain commas), then the JSON `filters`."""
    out: list[Filter] = []
    for raw in params.get("f") or ():
        parts = raw.split(",", 2)
        if len(parts) < 2:
            raise ParamError("f", f"expected field,operator[,value], got {raw!r}")
        out.append(_filter("f", parts[0].strip(), parts[1].strip(), tuple(parts[2:])))
    raw_json = _last(params, "filters")
    if raw_json:
        try:
            items = msgspec.json.decode(raw_json, type=list[_JsonFilter])
        except msgspec.DecodeError as e:
            raise ParamError("filters", f"not a JSON list of {{name, operator, value}}: {e}") from None
        for item in items:
            values = item.value if isinstance(item.value, list) else [item.value]
            out.append(_filter("filters", item.name, item.operator, tuple(values)))
    return tuple(out)


def parse_overview(params: Params, timezone: str, now: datetime) -> OverviewQuery:
    """The OverviewQuery of a dashboard URL in the project's `timezone` at `now`."""
    single = {name: value for name in ("range", "interval", "start", "end") if (value := _last(params, name))}
    return OverviewQuery(period=parse_period(single, timezone, now), filters=parse_filters(params))


def parse_metric(raw: str | None) -> Metric:
    if not raw:
        raise ParamError("metric", "required")
    metric = next((m for m in CARD_METRICS if m.value == raw), None)
    if metric is None:
        choices = ", ".join(m.value for m in CARD_METRICS)
        raise ParamError("metric", f"unknown metric {raw!r}; one of {choices}")
    return metric


def parse_int(raw: str | None, param: str, default: int, lo: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(param, f"must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ParamError(param, f"must be between {lo} and {hi}")
    return value


def to_params(pairs: Any) -> dict[str, list[str]]:
    """A Litestar/starlette MultiDict (or any `multi_items()` source) as {name: [values…]}."""
    out: dict[str, list[str]] = {}
    for key, value in pairs.multi_items():
        out.setdefault(str(key), []).append(str(value))
    return out
