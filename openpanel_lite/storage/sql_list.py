"""Row listings (event explorer, export API) compiled for any Dialect: the same filter and field
fragments as storage/sql.py, so a filter means the same thing in a chart and in a list.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from openpanel_lite.query import Filter, Grain, QueryError
from openpanel_lite.storage.columns import column_names
from openpanel_lite.storage.dialects import Dialect, ParamKind
from openpanel_lite.storage.sql import _column, _field_sql, _filter_sql, _Params

EVENT_COLUMNS = frozenset(column_names("events"))


class EventListQuery(msgspec.Struct, frozen=True, kw_only=True):
    project_id: str
    # Naive UTC bounds, start inclusive and end exclusive; None leaves that side open.
    start: datetime | None = None
    end: datetime | None = None
    names: tuple[str, ...] = ()
    profile_id: str | None = None
    session_id: str | None = None
    filters: tuple[Filter, ...] = ()
    columns: tuple[str, ...] = ("id", "name", "created_at")
    limit: int = 50
    offset: int = 0


def _where(q: EventListQuery, params: _Params) -> str:
    where = [f"e.project_id = {params.bind(q.project_id, ParamKind.STRING, 'project_id')}"]
    if q.start is not None:
        where.append(f"e.created_at >= {params.bind(q.start, ParamKind.TIMESTAMP, 'start')}")
    if q.end is not None:
        where.append(f"e.created_at < {params.bind(q.end, ParamKind.TIMESTAMP, 'end')}")
    if q.names:
        names = ", ".join(params.bind(n, ParamKind.STRING) for n in q.names)
        where.append(f"e.name IN ({names})")
    if q.profile_id is not None:
        where.append(f"e.profile_id = {params.bind(q.profile_id, ParamKind.STRING, 'profile_id')}")
    if q.session_id is not None:
        where.append(f"e.session_id = {params.bind(q.session_id, ParamKind.STRING, 'session_id')}")
    for f in q.filters:
        if _column(f.field, Grain.EVENTS) is None:
            raise QueryError(f"filters: {f.field} is not an event field")
        where.append(_filter_sql(f, _field_sql(f.field, Grain.EVENTS, params), params))
    return "\n  AND ".join(where)


def compile_event_list(q: EventListQuery, dialect: Dialect) -> tuple[str, str, dict[str, object]]:
    """(count SQL, page SQL, parameters): newest first, ties broken by id for stable pages."""
    unknown = [c for c in q.columns if c not in EVENT_COLUMNS]
    if unknown:
        raise QueryError(f"columns: unknown event columns {unknown}")
    params = _Params(dialect)
    where = _where(q, params)
    count_sql = f"-- sql\nSELECT count(*) FROM events AS e\nWHERE {where}"
    cols = ", ".join(f"e.{c}" for c in q.columns)
    limit = params.bind(q.limit, ParamKind.INT, "limit")
    offset = params.bind(q.offset, ParamKind.INT, "offset")
    page_sql = (
        f"-- sql\nSELECT {cols} FROM events AS e\nWHERE {where}\n"
        f"ORDER BY e.created_at DESC, {dialect.uuid_order.format(expr='e.id')} DESC\n"
        f"LIMIT {limit} OFFSET {offset}"
    )
    return count_sql, page_sql, params.values
