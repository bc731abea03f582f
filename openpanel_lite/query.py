"""The query vocabulary: what can be asked of the event store (metrics, dimensions, filters, ranges).

Dashboard widgets and /api/query build the same frozen `Query`; storage/sql.py compiles it to SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec


class QueryError(ValueError):
    """A query that cannot be answered; the message names the offending part."""


class ParamError(QueryError):
    """A bad request parameter; `param` names it (e.g. "range", "interval", "f") for the 400 body."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.detail = message


class Metric(StrEnum):
    """What is counted. Definitions follow upstream's overview (openpanel-facts §3.4)."""

    UNIQUE_VISITORS = "unique_visitors"  # distinct profile_id (= device id when anonymous)
    SESSIONS = "sessions"
    PAGEVIEWS = "pageviews"  # screen_view events
    VIEWS_PER_SESSION = "views_per_session"  # pageviews / sessions, 2 dp
    BOUNCE_RATE = "bounce_rate"  # percent of sessions that bounced, 2 dp
    AVG_SESSION_DURATION = "avg_session_duration"  # seconds; sessions of 0 ms excluded
    REVENUE = "revenue"  # sum of `revenue` events (cents by convention)
    EVENTS = "events"  # all events except the synthetic session_start / session_end
    # Seconds from a screen_view to the next later screen_view of its session (over all of the
    # range's screen views, before filters), averaged over the views that have one; events only.
    AVG_TIME_ON_PAGE = "avg_time_on_page"


class Dimension(StrEnum):
    """What results can be grouped or filtered by; names are upstream's column names."""

    NAME = "name"  # event name
    PATH = "path"
    ORIGIN = "origin"
    REFERRER = "referrer"
    REFERRER_NAME = "referrer_name"
    REFERRER_TYPE = "referrer_type"
    UTM_SOURCE = "utm_source"
    UTM_MEDIUM = "utm_medium"
    UTM_CAMPAIGN = "utm_campaign"
    UTM_TERM = "utm_term"
    UTM_CONTENT = "utm_content"
    COUNTRY = "country"
    REGION = "region"
    CITY = "city"
    DEVICE = "device"
    BROWSER = "browser"
    BROWSER_VERSION = "browser_version"
    OS = "os"
    OS_VERSION = "os_version"
    BRAND = "brand"
    MODEL = "model"
    ENTRY_PATH = "entry_path"  # first page of the session
    ENTRY_ORIGIN = "entry_origin"
    EXIT_PATH = "exit_path"  # last page of the session
    EXIT_ORIGIN = "exit_origin"


class Interval(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # weeks start on Monday
    MONTH = "month"


class FilterOperator(StrEnum):
    """Upstream's chart filter operators (openpanel-facts §5.10), minus cohorts."""

    IS = "is"
    IS_NOT = "isNot"
    CONTAINS = "contains"  # contains/startsWith/endsWith ignore case
    DOES_NOT_CONTAIN = "doesNotContain"
    STARTS_WITH = "startsWith"
    ENDS_WITH = "endsWith"
    REGEX = "regex"  # RE2 syntax
    IS_NULL = "isNull"  # empty or absent
    IS_NOT_NULL = "isNotNull"
    GT = "gt"  # gt/lt/gte/lte compare as numbers; non-numeric values never match
    LT = "lt"
    GTE = "gte"
    LTE = "lte"


class Grain(StrEnum):
    """The table a query is answered from; see storage/sql.py for what each means."""

    SESSIONS = "sessions"
    EVENTS = "events"


class Property(msgspec.Struct, frozen=True):
    """An event property, `properties.<key>` in upstream's filter and breakdown names."""

    key: str


PROPERTY_PREFIX = "properties."
_CAMEL_ALIASES = {
    "referrerName": Dimension.REFERRER_NAME,
    "referrerType": Dimension.REFERRER_TYPE,
    "browserVersion": Dimension.BROWSER_VERSION,
    "osVersion": Dimension.OS_VERSION,
    "entryPath": Dimension.ENTRY_PATH,
    "entryOrigin": Dimension.ENTRY_ORIGIN,
    "exitPath": Dimension.EXIT_PATH,
    "exitOrigin": Dimension.EXIT_ORIGIN,
}


def parse_field(name: str) -> Dimension | Property:
    """Upstream's field names -> ours: `path`, `referrerName`, `properties.plan` -> Property('plan')."""
    if name.startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX):
        return Property(name[len(PROPERTY_PREFIX) :])
    if name in _CAMEL_ALIASES:
        return _CAMEL_ALIASES[name]
    try:
        return Dimension(name)
    except ValueError:
        raise QueryError(f"unknown field {name!r}") from None


FilterValue = str | int | float | bool | None


class Filter(msgspec.Struct, frozen=True):
    """`field <operator> values`; several values OR together, several filters AND together."""

    field: Dimension | Property
    operator: FilterOperator
    values: tuple[FilterValue, ...] = ()


class DateRange(msgspec.Struct, frozen=True):
    """The half-open range [start, end). Naive datetimes are wall-clock times in `timezone`,
    which is also the zone that time buckets (days, weeks …) are cut in."""

    start: datetime
    end: datetime
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise QueryError(f"range.timezone: unknown time zone {self.timezone!r}") from None
        start, end = self.utc_bounds()
        if start >= end:
            raise QueryError("range: start must be before end")

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """start and end as naive UTC datetimes, the form the store keeps."""
        zone = ZoneInfo(self.timezone)

        def to_utc(value: datetime) -> datetime:
            aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
            return aware.astimezone(UTC).replace(tzinfo=None)

        return to_utc(self.start), to_utc(self.end)


class Order(msgspec.Struct, frozen=True):
    metric: Metric
    descending: bool = True


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """One question for the store.

    No dimensions and no interval: one row of totals. An interval: a time series. Dimensions: a
    breakdown, top `limit` rows by `order` (default: the first metric, descending); with an
    interval as well, the series of the top `limit` dimension values.
    """

    project_id: str
    range: DateRange
    metrics: tuple[Metric, ...]
    dimensions: tuple[Dimension | Property, ...] = ()
    filters: tuple[Filter, ...] = ()
    interval: Interval | None = None
    limit: int | None = None
    offset: int = 0
    order: tuple[Order, ...] = ()
    # None: chosen from the fields (storage/sql.py choose_grain). SESSIONS forces the sessions table,
    # event-only filters then keep the sessions that have a matching event (upstream's overview).
    grain: Grain | None = None

    def __post_init__(self) -> None:
        if not self.metrics:
            raise QueryError("metrics: at least one is needed")
        if len(set(self.metrics)) != len(self.metrics):
            raise QueryError("metrics: listed twice")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise QueryError("dimensions: listed twice")
        if self.limit is not None and self.limit < 1:
            raise QueryError("limit: must be at least 1")
        if self.offset < 0:
            raise QueryError("offset: must not be negative")
        for o in self.order:
            if o.metric not in self.metrics:
                raise QueryError(f"order: {o.metric} is not among the metrics")


def default_interval(start: datetime, end: datetime) -> Interval:
    """Upstream's choice for custom ranges: within a day hour; <=92 days day; <=186 week; else month."""
    span = end - start
    if span <= timedelta(days=1):
        return Interval.HOUR
    if span <= timedelta(days=92):
        return Interval.DAY
    if span <= timedelta(days=186):
        return Interval.WEEK
    return Interval.MONTH
