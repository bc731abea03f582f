"""dates.py: named ranges in the project's zone, previous periods, interval rules, complete buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from openpanel_lite.dates import (
    Period,
    RangeName,
    buckets,
    named_bounds,
    parse_period,
    resolve_period,
)
from openpanel_lite.query import DateRange, Interval, ParamError

LA = "America/Los_Angeles"
# Wednesday 2025-03-12 01:30 UTC = Tuesday 2025-03-11 18:30 in Los Angeles (PDT, UTC-7).
NOW = datetime(2025, 3, 12, 1, 30, 45, tzinfo=UTC)


def d(*args: int) -> datetime:
    return datetime(*args)  # type: ignore[arg-type]


NAMED_UTC: dict[RangeName, tuple[datetime, datetime]] = {
    RangeName.MIN_30: (d(2025, 3, 12, 1, 0), d(2025, 3, 12, 1, 31)),
    RangeName.LAST_HOUR: (d(2025, 3, 12, 0, 30), d(2025, 3, 12, 1, 31)),
    RangeName.LAST_24H: (d(2025, 3, 11, 1, 30), d(2025, 3, 12, 1, 31)),
    RangeName.TODAY: (d(2025, 3, 12), d(2025, 3, 13)),
    RangeName.YESTERDAY: (d(2025, 3, 11), d(2025, 3, 12)),
    RangeName.DAYS_7: (d(2025, 3, 5), d(2025, 3, 13)),
    RangeName.DAYS_30: (d(2025, 2, 10), d(2025, 3, 13)),
    RangeName.MONTHS_3: (d(2024, 12, 12), d(2025, 3, 13)),
    RangeName.MONTHS_6: (d(2024, 9, 12), d(2025, 3, 13)),
    RangeName.MONTHS_12: (d(2024, 3, 1), d(2025, 4, 1)),
    RangeName.MONTH_TO_DATE: (d(2025, 3, 1), d(2025, 3, 13)),
    RangeName.LAST_MONTH: (d(2025, 2, 1), d(2025, 3, 1)),
    RangeName.YEAR_TO_DATE: (d(2025, 1, 1), d(2025, 3, 13)),
    RangeName.LAST_YEAR: (d(2024, 1, 1), d(2025, 1, 1)),
}


@pytest.mark.parametrize("name", list(NAMED_UTC))
def test_named_ranges_in_utc(name: RangeName) -> None:
    assert named_bounds(name, "UTC", NOW) == NAMED_UTC[name]


def test_named_ranges_follow_the_project_day() -> None:
    # In Los Angeles it is still Tuesday the 11th.
    assert named_bounds(RangeName.TODAY, LA, NOW) == (d(2025, 3, 11), d(2025, 3, 12))
    assert named_bounds(RangeName.YESTERDAY, LA, NOW) == (d(2025, 3, 10), d(2025, 3, 11))
    assert named_bounds(RangeName.DAYS_7, LA, NOW) == (d(2025, 3, 4), d(2025, 3, 12))
    assert named_bounds(RangeName.MIN_30, LA, NOW) == (d(2025, 3, 11, 18, 0), d(2025, 3, 11, 18, 31))
    # Kolkata is UTC+5:30: already 07:00 on the 12th.
    assert named_bounds(RangeName.TODAY, "Asia/Kolkata", NOW) == (d(2025, 3, 12), d(2025, 3, 13))
    assert named_bounds(RangeName.MONTHS_3, "UTC", datetime(2025, 5, 31, tzinfo=UTC))[0] == d(2025, 2, 28)


def test_today_on_a_dst_day_is_23_hours_with_no_missing_bucket() -> None:
    spring = resolve_period(RangeName.TODAY, LA, datetime(2025, 3, 9, 20, tzinfo=UTC))
    assert spring.interval is Interval.HOUR
    assert spring.current.utc_bounds() == (d(2025, 3, 9, 8), d(2025, 3, 10, 7))
    hours = buckets(spring.current, Interval.HOUR)
    assert len(hours) == 23 and d(2025, 3, 9, 2) not in hours and hours[2] == d(2025, 3, 9, 3)
    # The day before (previous period) is an ordinary 24-hour day.
    assert spring.previous == DateRange(start=d(2025, 3, 8), end=d(2025, 3, 9), timezone=LA)
    assert len(buckets(spring.previous, Interval.HOUR)) == 24
    autumn = resolve_period(RangeName.TODAY, LA, datetime(2025, 11, 2, 20, tzinfo=UTC))
    assert autumn.current.utc_bounds() == (d(2025, 11, 2, 7), d(2025, 11, 3, 8))  # 25 hours
    assert buckets(autumn.current, Interval.HOUR) == [d(2025, 11, 2, h) for h in range(24)]


def test_previous_period_has_the_same_wall_clock_length() -> None:
    p = resolve_period(RangeName.DAYS_7, "UTC", NOW)
    assert (p.current.start, p.current.end) == (d(2025, 3, 5), d(2025, 3, 13))
    assert (p.previous.start, p.previous.end) == (d(2025, 2, 25), d(2025, 3, 5))
    last_month = resolve_period(RangeName.LAST_MONTH, "UTC", NOW)
    assert (last_month.previous.start, last_month.previous.end) == (d(2025, 1, 4), d(2025, 2, 1))
    minutes = resolve_period(RangeName.MIN_30, "UTC", NOW)
    assert minutes.interval is Interval.MINUTE
    assert (minutes.previous.start, minutes.previous.end) == (d(2025, 3, 12, 0, 29), d(2025, 3, 12, 1, 0))
    assert len(buckets(minutes.current, Interval.MINUTE)) == 31


DEFAULT_INTERVALS = {
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


def test_default_intervals() -> None:
    assert set(DEFAULT_INTERVALS) == set(RangeName) - {RangeName.CUSTOM}
    for name, interval in DEFAULT_INTERVALS.items():
        assert resolve_period(name, LA, NOW).interval is interval, name


@pytest.mark.parametrize(
    ("start", "end", "interval"),
    [
        (d(2025, 3, 1), d(2025, 3, 2), Interval.HOUR),  # same day
        (d(2025, 1, 1), d(2025, 4, 3), Interval.DAY),  # 92 days
        (d(2025, 1, 1), d(2025, 4, 4), Interval.WEEK),  # 93 days
        (d(2025, 1, 1), d(2025, 7, 6), Interval.WEEK),  # 186 days
        (d(2025, 1, 1), d(2025, 7, 7), Interval.MONTH),  # 187 days
    ],
)
def test_custom_default_intervals(start: datetime, end: datetime, interval: Interval) -> None:
    p = resolve_period(RangeName.CUSTOM, "UTC", NOW, start=start, end=end)
    assert p.interval is interval
    assert (p.previous.start, p.previous.end) == (start - (end - start), start)


DAY = Interval.DAY


def test_interval_limits() -> None:
    with pytest.raises(ParamError, match="minute is not allowed") as e:
        resolve_period(RangeName.TODAY, "UTC", NOW, interval=Interval.MINUTE)
    assert e.value.param == "interval"
    with pytest.raises(ParamError, match="hour is not allowed"):
        resolve_period(RangeName.DAYS_30, "UTC", NOW, interval=Interval.HOUR)
    assert resolve_period(RangeName.DAYS_7, "UTC", NOW, interval=Interval.HOUR).interval is Interval.HOUR
    assert resolve_period(RangeName.MIN_30, "UTC", NOW, interval=Interval.HOUR).interval is Interval.HOUR
    assert resolve_period(RangeName.DAYS_30, "UTC", NOW, interval=Interval.MONTH).interval is Interval.MONTH
    with pytest.raises(ParamError, match="more than 2000 points"):
        resolve_period(
            RangeName.CUSTOM, "UTC", NOW, start=d(2000, 1, 1), end=d(2020, 1, 1), interval=Interval.DAY
        )


def test_buckets_are_complete_and_monday_weeks() -> None:
    r = DateRange(start=d(2025, 3, 5), end=d(2025, 3, 13), timezone=LA)
    assert buckets(r, Interval.DAY) == [d(2025, 3, 5) + timedelta(days=i) for i in range(8)]
    assert buckets(r, Interval.WEEK) == [d(2025, 3, 3), d(2025, 3, 10)]
    assert buckets(r, Interval.MONTH) == [d(2025, 3, 1)]
    year = DateRange(start=d(2024, 3, 1), end=d(2025, 4, 1))
    assert len(buckets(year, Interval.MONTH)) == 13 and buckets(year, Interval.MONTH)[-1] == d(2025, 3, 1)


def test_parse_period_from_query_string() -> None:
    assert parse_period({}, "UTC", NOW) == resolve_period(RangeName.DAYS_30, "UTC", NOW)
    p = parse_period({"range": "custom", "start": "2025-03-10", "end": "2025-03-11"}, LA, NOW)
    assert p == Period(
        range=RangeName.CUSTOM,
        interval=Interval.DAY,
        current=DateRange(start=d(2025, 3, 10), end=d(2025, 3, 12), timezone=LA),
        previous=DateRange(start=d(2025, 3, 8), end=d(2025, 3, 10), timezone=LA),
    )
    # Dates alone mean custom; an aware datetime is converted to the project's wall clock.
    q = parse_period({"start": "2025-03-10T00:00:00Z", "end": "2025-03-10T12:00:00"}, LA, NOW)
    assert (q.range, q.current.start, q.current.end, q.interval) == (
        RangeName.CUSTOM,
        d(2025, 3, 9, 17),
        d(2025, 3, 10, 12),
        Interval.HOUR,
    )
    assert parse_period({"range": "today", "interval": "day"}, "UTC", NOW).interval is Interval.DAY


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"range": "fortnight"}, "range", "unknown range 'fortnight'"),
        ({"interval": "decade"}, "interval", "unknown interval 'decade'"),
        ({"range": "30d", "interval": "minute"}, "interval", "minute is not allowed"),
        ({"range": "custom", "end": "2025-03-10"}, "start", "required"),
        ({"range": "custom", "start": "2025-03-10"}, "end", "required"),
        ({"start": "2025-03-10", "end": "2025-03-09"}, "end", "must be after start"),
        ({"start": "yesterday", "end": "2025-03-09"}, "start", "not an ISO date"),
        ({"start": "2025-03-10", "end": "2025-13-01"}, "end", "not an ISO date"),
        ({"range": "7d", "start": "2025-03-10"}, "start", "only allowed with range=custom"),
    ],
)
def test_parse_period_errors_name_the_parameter(params: dict[str, str], param: str, message: str) -> None:
    with pytest.raises(ParamError, match=message) as e:
        parse_period(params, "UTC", NOW)
    assert e.value.param == param
    assert str(e.value).startswith(f"{param}: ")
