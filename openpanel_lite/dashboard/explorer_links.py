"""URLs and query-string state of the explorer and realtime pages, built in Python so templates only
print them (every value in them comes from tracked events and is percent-encoded here).

- ``Links(project_id)``: the page URLs of one project (event, session, profile, filtered event list).
  Session and profile ids that cannot be one path segment ('', '.', '..', anything with '/') use the
  ``/session?id=`` and ``/profile?id=`` twin routes,
  since servers decode %2F before routing and browsers collapse dot segments.
- ``ListState``: the event list's state in the URL (names, ``f`` filters, page) and the links that change
  one part of it (pages, removing a filter chip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from openpanel_lite.query import (
    Dimension,
    Filter,
    FilterOperator,
    ParamError,
    Property,
    QueryError,
    parse_field,
)
from openpanel_lite.reports.params import parse_filters, parse_int
from openpanel_lite.storage.sql_list import EVENT_COLUMNS

Params = Mapping[str, Sequence[str]]
MAX_FILTERS = 20


def segment(value: str) -> str | None:
    """`value` as one percent-encoded path segment; None when no URL path can carry it intact."""
    if value in ("", ".", "..") or "/" in value:
        return None
    return quote(value, safe="")


@dataclass(frozen=True)
class Links:
    project_id: str

    @property
    def base(self) -> str:
        return f"/p/{quote(self.project_id, safe='')}"

    def _item(self, kind: str, twin: str, item_id: str) -> str:
        part = segment(item_id)
        if part is None:
            return f"{self.base}/{twin}?{urlencode({'id': item_id})}"
        return f"{self.base}/{kind}/{part}"

    def event(self, event_id: str) -> str:
        # Event ids are UUIDs: always one safe segment.
        return f"{self.base}/events/{quote(event_id, safe='')}"

    def session(self, session_id: str) -> str:
        return self._item("sessions", "session", session_id)

    def profile(self, profile_id: str) -> str:
        return self._item("profiles", "profile", profile_id)

    def events_where(self, field_name: str, operator: str, value: str = "") -> str:
        """The event list filtered by one field (`country`, `path`, `properties.plan` …)."""
        spec = f"{field_name},{operator}" + (f",{value}" if value else "")
        return f"{self.base}/events?{urlencode({'f': spec})}"

    def page(self, name: str, **params: str) -> str:
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{self.base}/{name}" + (f"?{query}" if query else "")


def field_label(f: Filter) -> str:
    return f.field.value if isinstance(f.field, Dimension) else f"properties.{f.field.key}"


def filter_spec(f: Filter) -> str:
    """The `f=` form of a filter (field,operator[,value]); only single-value filters are built here."""
    head = f"{field_label(f)},{f.operator.value}"
    return head if not f.values else f"{head},{f.values[0]}"


def new_filter(key: str, operator: str, value: str) -> Filter | None:
    """The filter typed into the form: a known field name, `properties.x`, or any other key as a property."""
    key = key.strip()
    if not key:
        return None
    if "," in key:
        raise ParamError("key", "a property name cannot contain a comma")
    try:
        op = FilterOperator(operator or FilterOperator.IS.value)
    except ValueError:
        raise ParamError("op", f"unknown operator {operator!r}") from None
    try:
        parsed: Dimension | Property = parse_field(key)
    except QueryError:
        parsed = Property(key)
    if isinstance(parsed, Dimension) and parsed.value not in EVENT_COLUMNS:
        raise ParamError("key", f"{key} is a session field; events can be filtered by event fields")
    if op in (FilterOperator.IS_NULL, FilterOperator.IS_NOT_NULL):
        return Filter(parsed, op)
    return Filter(parsed, op, (value,))


@dataclass(frozen=True)
class Chip:
    label: str
    remove_url: str


@dataclass(frozen=True)
class ListState:
    """The event list's URL state: event names, filters (as `f` strings) and the page."""

    path: str
    names: tuple[str, ...] = ()
    specs: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    page: int = 1

    @classmethod
    def parse(cls, path: str, params: Params) -> ListState:
        """From the query string; the form's key/op/value and added name become one more chip."""
        names = [n for n in params.get("name") or () if n]
        specs = [s for s in params.get("f") or () if s]
        added = new_filter(_last(params, "key"), _last(params, "op"), _last(params, "value"))
        if added is not None:
            specs.append(filter_spec(added))
        names, specs = list(dict.fromkeys(names)), list(dict.fromkeys(specs))
        if len(specs) > MAX_FILTERS or len(names) > MAX_FILTERS:
            raise ParamError("f", f"at most {MAX_FILTERS} filters")
        # parse_filters also refuses non-numbers for gt/lt/gte/lte and regexes RE2 cannot run.
        filters = parse_filters({"f": specs})
        page = parse_int(_last(params, "page") or None, "page", 1, 1, 10_000)
        return cls(path=path, names=tuple(names), specs=tuple(specs), filters=filters, page=page)

    def url(
        self, *, names: Sequence[str] | None = None, specs: Sequence[str] | None = None, page: int = 1
    ) -> str:
        pairs = [("name", n) for n in (self.names if names is None else names)]
        pairs += [("f", s) for s in (self.specs if specs is None else specs)]
        if page > 1:
            pairs.append(("page", str(page)))
        return self.path + (f"?{urlencode(pairs)}" if pairs else "")

    def page_url(self, page: int) -> str:
        return self.url(page=page)

    def chips(self) -> list[Chip]:
        out = [Chip(f"event is {n}", self.url(names=[m for m in self.names if m != n])) for n in self.names]
        for spec, f in zip(self.specs, self.filters, strict=True):
            text = " ".join([field_label(f), f.operator.value, *(str(v) for v in f.values)])
            out.append(Chip(text, self.url(specs=[s for s in self.specs if s != spec])))
        return out


def _last(params: Params, name: str) -> str:
    values = params.get(name) or ()
    return values[-1] if values else ""
