"""Dashboard date ranges (openpanel-facts §5.10): upstream's named ranges resolved in the project's
time zone, the previous period of equal length, interval defaults and limits, complete time buckets,
and the parser for the URL query string (`range=30d&interval=day&start=…&end=…`).

All calendar math is done on wall-clock (naive) times in the project's zone, as upstream does, so a
"day" is midnight to midnight there even when DST makes it 23 or 25 hours long.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import msgspec

from openpanel_lite.query import DateRange, Interval, ParamError, QueryError, default_interval


class RangeName(StrEnum):
    """Upstream's range names (zReportInput `range`)."""

    MIN_30 = "30min"
    LAST_HOUR = "lastHour"
    LAST_24H = "last24h"
    TODAY = "today"
    YESTERDAY = "yesterday"
    DAYS_7 = "7d"
    DAYS_30 = "30d"
    MONTHS_3 = "3m"
    MONTHS_6 = "6m"
    MONTHS_12 = "12m"
    MONTH_TO_DATE = "monthToDate"
    LAST_MONTH = "lastMonth"
    YEAR_TO_DATE = "yearToDate"
    LAST_YEAR = "lastYear"
    CUSTOM = "custom"


DEFAULT_RANGE = RangeName.DAYS_30

# §5.10 interval defaults; custom ranges use query.default_interval on their length.
_DEFAULT_INTERVAL: dict[RangeName, Interval] = {
    RangeName.MIN_30: Interval.MINUTE,
    RangeName.LAST_HOUR: Interval.MINUTE,
    RangeName.LAST_24H: Interval.HOUR,
    RangeName.TODAY: Interval.HOUR,
    RangeName.YESTERDAY: Interval.HOUR,
    RangeName.DAYS_7: Interval.DAY,
    RangeName.DAYS_30: Interval.DAY,
    RangeName.MONTHS_3: Interval.DAY,
    RangeName.MONTH_TO_DATE: Interval.DAY,
    RangeName.LAST_MONTH: Interval.DAY,
    RangeName.MONTHS_6: Interval.WEEK,
    RangeName.MONTHS_12: Interval.MONTH,
    RangeName.YEAR_TO_DATE: Interval.MONTH,
    RangeName.LAST_YEAR: Interval.MONTH,
}
_MINUTE_RANGES = frozenset({RangeName.MIN_30, RangeName.LAST_HOUR})
# "Hour allowed up to 7d": the 7d range spans 8 calendar days (7 back plus today).
MAX_HOURLY_SPAN = timedelta(days=8)
# A chart with more points than this is unreadable and slow to fill; ask for a coarser interval.
MAX_BUCKETS = 2000
_STEP = {Interval.MINUTE: timedelta(minutes=1), Interval.HOUR: timedelta(hours=1)}


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved dashboard period: the current range, the previous one of equal length, the interval."""

    range: RangeName
    interval: Interval
    current: DateRange
    previous: DateRange

    @property
    def timezone(self) -> str:
        return self.current.timezone


# ---------------------------------------------------------------------------------------------
# ranges


def _zone(timezone: str) -> ZoneInfo:
    DateRange(start=datetime(2000, 1, 1), end=datetime(2000, 1, 2), timezone=timezone)  # validates
    return ZoneInfo(timezone)


def _local(at: datetime, zone: ZoneInfo) -> datetime:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(zone).replace(tzinfo=None)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0))


def _add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the month's last day (Luxon's rule)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    first_of_next = date(year + (month + 1) // 12, (month + 1) % 12 + 1, 1)
    last_day = (first_of_next - timedelta(days=1)).day
    return date(year, month + 1, min(day.day, last_day))


def named_bounds(name: RangeName, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of a named range as wall-clock times in `timezone`, like upstream's
    getDatesFromRange: day ranges run to the end of today, short ones to the end of this minute."""
    zone = _zone(timezone)
    if name in (RangeName.MIN_30, RangeName.LAST_HOUR, RangeName.LAST_24H):
        minutes = {RangeName.MIN_30: 30, RangeName.LAST_HOUR: 60, RangeName.LAST_24H: 24 * 60}[name]
        # Minute arithmetic on instants, so a DST change inside the window cannot shift it.
        utc_now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
        this_minute = utc_now.replace(second=0, microsecond=0)
        return (
            _local(this_minute - timedelta(minutes=minutes), zone),
            _local(this_minute + timedelta(minutes=1), zone),
        )
    today = _local(now, zone).date()
    tomorrow = _midnight(today + timedelta(days=1))
    first_of_month = today.replace(day=1)
    match name:
        case RangeName.TODAY:
            return _midnight(today), tomorrow
        case RangeName.YESTERDAY:
            return _midnight(today - timedelta(days=1)), _midnight(today)
        case RangeName.DAYS_7:
            return _midnight(today - timedelta(days=7)), tomorrow
        case RangeName.DAYS_30:
            return _midnight(today - timedelta(days=30)), tomorrow
        case RangeName.MONTHS_3:
            return _midnight(_add_months(today, -3)), tomorrow
        case RangeName.MONTHS_6:
            return _midnight(_add_months(today, -6)), tomorrow
        case RangeName.MONTHS_12:
            return _midnight(_add_months(first_of_month, -12)), _midnight(_add_months(first_of_month, 1))
        case RangeName.MONTH_TO_DATE:
            return _midnight(first_of_month), tomorrow
        case RangeName.LAST_MONTH:
            return _midnight(_add_months(first_of_month, -1)), _midnight(first_of_month)
        case RangeName.YEAR_TO_DATE:
            return _midnight(date(today.year, 1, 1)), tomorrow
        case RangeName.LAST_YEAR:
            return _midnight(date(today.year - 1, 1, 1)), _midnight(date(today.year, 1, 1))
    raise QueryError(f"range: {name} has no fixed bounds")


def previous_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The period of equal wall-clock length just before [start, end) (getChartPrevStartEndDate)."""
    length = end - start
    return start - length, start


def allowed_intervals(name: RangeName, start: datetime, end: datetime) -> tuple[Interval, ...]:
    """Minute only for 30min/lastHour; hour up to 7d (custom: up to 8 days); day and up always."""
    allowed = [Interval.DAY, Interval.WEEK, Interval.MONTH]
    if name in _MINUTE_RANGES or end - start <= MAX_HOURLY_SPAN:
        allowed.insert(0, Interval.HOUR)
    if name in _MINUTE_RANGES:
        allowed.insert(0, Interval.MINUTE)
    return tuple(allowed)


def resolve_period(
    name: RangeName,
    timezone: str,
    now: datetime,
    *,
    interval: Interval | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Period:
    """The Period for a range; custom ranges take wall-clock `start`/`end` in `timezone`.

    Raises ParamError naming "start", "end" or "interval" when they do not fit.
    """
    if name is RangeName.CUSTOM:
        if start is None:
            raise ParamError("start", "required with range=custom")
        if end is None:
            raise ParamError("end", "required with range=custom")
        if end <= start:
            raise ParamError("end", "must be after start")
    else:
        start, end = named_bounds(name, timezone, now)
    default = _DEFAULT_INTERVAL.get(name) or default_interval(start, end)
    chosen = interval or default
    allowed = allowed_intervals(name, start, end)
    if chosen not in allowed:
        raise ParamError(
            "interval", f"{chosen} is not allowed for this range; use one of {', '.join(allowed)}"
        )
    if _count_buckets(start, end, chosen) > MAX_BUCKETS:
        raise ParamError("interval", f"{chosen} gives more than {MAX_BUCKETS} points; use a longer one")
    prev_start, prev_end = previous_bounds(start, end)
    try:
        current = DateRange(start=start, end=end, timezone=timezone)
        previous = DateRange(start=prev_start, end=prev_end, timezone=timezone)
    except QueryError as e:
        raise ParamError("start", str(e)) from None
    return Period(range=name, interval=chosen, current=current, previous=previous)


# ---------------------------------------------------------------------------------------------
# buckets


def bucket_start(at: datetime, interval: Interval) -> datetime:
    """The wall-clock start of the bucket holding `at`, as the store's time_bucket computes it."""
    match interval:
        case Interval.MINUTE:
            return at.replace(second=0, microsecond=0)
        case Interval.HOUR:
            return at.replace(minute=0, second=0, microsecond=0)
        case Interval.DAY:
            return _midnight(at.date())
        case Interval.WEEK:
            return _midnight(at.date() - timedelta(days=at.weekday()))  # Monday
        case Interval.MONTH:
            return _midnight(at.date().replace(day=1))


def _next(bucket: datetime, interval: Interval) -> datetime:
    if interval is Interval.DAY:
        return bucket + timedelta(days=1)
    if interval is Interval.WEEK:
        return bucket + timedelta(days=7)
    if interval is Interval.MONTH:
        return _midnight(_add_months(bucket.date(), 1))
    return bucket + _STEP[interval]


def _count_buckets(start: datetime, end: datetime, interval: Interval) -> int:
    span = end - bucket_start(start, interval)
    per = {Interval.MINUTE: 60, Interval.HOUR: 3600, Interval.DAY: 86400, Interval.WEEK: 7 * 86400}
    if interval is Interval.MONTH:
        return (end.year - start.year) * 12 + end.month - start.month + 1
    return int(span.total_seconds() // per[interval]) + 1


def _exists(local: datetime, zone: ZoneInfo) -> bool:
    """False for wall-clock times skipped by a DST jump (02:30 on a spring-forward night)."""
    there_and_back = local.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return there_and_back == local


def buckets(r: DateRange, interval: Interval) -> list[datetime]:
    """Every bucket start of the range, oldest first, as wall-clock times in r.timezone.

    These are exactly the labels the store's series can return, so a series filled from this list
    is complete: an hour skipped by DST never appears, a repeated one appears once.
    """
    zone = ZoneInfo(r.timezone)
    start = _local(r.start, zone) if r.start.tzinfo else r.start
    end = _local(r.end, zone) if r.end.tzinfo else r.end
    out: list[datetime] = []
    bucket = bucket_start(start, interval)
    while bucket < end:
        if interval not in _STEP or _exists(bucket, zone):
            out.append(bucket)
        bucket = _next(bucket, interval)
    return out


# ---------------------------------------------------------------------------------------------
# query string


def _parse_bound(param: str, raw: str, zone: ZoneInfo, *, end: bool) -> datetime:
    """YYYY-MM-DD (a whole day; an end date is inclusive) or an ISO datetime, as wall-clock time."""
    value = raw.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return _midnight(day + timedelta(days=1) if end else day)
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParamError(param, f"not an ISO date or datetime: {raw!r}") from None
    return _local(at, zone) if at.tzinfo is not None else at


def parse_period(params: Mapping[str, str], timezone: str, now: datetime) -> Period:
    """The Period of a dashboard URL: `range` (default 30d), `interval`, `start`/`end` (custom).

    Giving `start` and `end` without `range` means a custom range. Errors name the parameter.
    """
    raw_range = params.get("range") or ""
    has_dates = bool(params.get("start") or params.get("end"))
    if not raw_range:
        name = RangeName.CUSTOM if has_dates else DEFAULT_RANGE
    else:
        try:
            name = RangeName(raw_range)
        except ValueError:
            choices = ", ".join(r.value for r in RangeName)
            raise ParamError("range", f"unknown range {raw_range!r}; one of {choices}") from None
    if name is not RangeName.CUSTOM and has_dates:
        raise ParamError("start" if params.get("start") else "end", "only allowed with range=custom")
    interval: Interval | None = None
    if params.get("interval"):
        try:
            interval = Interval(params["interval"])
        except ValueError:
            choices = ", ".join(i.value for i in Interval)
            raise ParamError(
                "interval", f"unknown interval {params['interval']!r}; one of {choices}"
            ) from None
    zone = _zone(timezone)
    start = _parse_bound("start", params["start"], zone, end=False) if params.get("start") else None
    end = _parse_bound("end", params["end"], zone, end=True) if params.get("end") else None
    return resolve_period(name, timezone, now, interval=interval, start=start, end=end)
