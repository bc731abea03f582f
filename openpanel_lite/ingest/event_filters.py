"""Project event filters (openpanel-facts §1.13): `{type:'event', name, filters[]}` drops matching
events silently before session handling, as upstream's worker does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from openpanel_lite.meta.project_filters import EventFilter, EventPropertyFilter, FilterValue
from openpanel_lite.meta.projects import Project


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _one(op: str, actual: str, value: FilterValue) -> bool:
    expected = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    low, exp = actual.lower(), expected.lower()
    if op == "is":
        return actual == expected
    if op == "contains":
        return exp in low
    if op == "startsWith":
        return low.startswith(exp)
    if op == "endsWith":
        return low.endswith(exp)
    if op == "regex":
        rx = _regex(expected)
        return rx is not None and rx.search(actual) is not None
    if op in ("gt", "lt", "gte", "lte"):
        a, b = _number(actual), _number(expected)
        if a is None or b is None:
            return False
        return {"gt": a > b, "lt": a < b, "gte": a >= b, "lte": a <= b}[op]
    return False


def condition_matches(cond: EventPropertyFilter, props: Mapping[str, str]) -> bool:
    """One condition against an event's stored (flattened, string) properties; values OR together."""
    actual = props.get(cond.name, "")
    op = cond.operator
    if op == "isNull":
        return actual == ""
    if op == "isNotNull":
        return actual != ""
    if op == "isNot":
        return all(not _one("is", actual, v) for v in cond.value)
    if op == "doesNotContain":
        return all(not _one("contains", actual, v) for v in cond.value)
    return any(_one(op, actual, v) for v in cond.value)


def should_drop(project: Project, name: str, props: Mapping[str, str]) -> bool:
    """True when an event filter of the project names this event and all its conditions match."""
    for f in project.filters:
        if (
            isinstance(f, EventFilter)
            and f.name == name
            and all(condition_matches(c, props) for c in f.filters)
        ):
            return True
    return False
