"""`openpanel migrate-events --to clickhouse`: copy the DuckDB event store into the ClickHouse store of
`[storage.clickhouse]`, then verify and switch the config to it.

The copy goes in chunks of one (table, project, UTC day), each read in a fixed order and inserted as
one block with an insert_deduplication_token, so a retried insert never doubles. It is resumable: a
chunk whose row count already matches in ClickHouse is skipped, a partly copied one (an interruption
mid-insert on a cluster, or rows written there by hand) is deleted and copied again. The spool
watermark moves across too, so the server replays exactly the records DuckDB had not stored.
Only when every (table, project, day) count matches does it set `backend = "clickhouse"` in the
config file. Run it with the server stopped: DuckDB allows one process per file.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any, TextIO

import msgspec

from openpanel_lite.config import Config
from openpanel_lite.paths import events_path
from openpanel_lite.storage.clickhouse import ClickHouseStore
from openpanel_lite.storage.columns import TABLES, column_names
from openpanel_lite.storage.duckdb import DuckDBStore

# (table, project_id, day) -> rows
Counts = dict[tuple[str, str, date], int]
Progress = Callable[[int, int, int], None]  # chunks done, chunks in all, rows copied


class MigrationError(Exception):
    """The copy could not be verified; the config is left as it was."""


class Report(msgspec.Struct, frozen=True, kw_only=True):
    chunks: int
    copied_chunks: int
    skipped_chunks: int
    rows: int
    watermark: int
    switched: bool


def _day_counts(fetch: Callable[[str, dict[str, object]], list[tuple[Any, ...]]], day_sql: str) -> Counts:
    counts: Counts = {}
    for table in TABLES:
        sql = f"SELECT project_id, {day_sql} AS d, count(*) FROM {table} GROUP BY project_id, d"
        for project, day, n in fetch(sql, {}):
            counts[(table, str(project), day if isinstance(day, date) else day.date())] = int(n)
    return counts


def duckdb_counts(store: DuckDBStore) -> Counts:
    return _day_counts(store.fetch, "CAST(created_at AS DATE)")


def clickhouse_counts(store: ClickHouseStore) -> Counts:
    return _day_counts(store.fetch, "toDate(created_at)")


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day)
    return start, datetime.fromordinal(day.toordinal() + 1)


def copy_events(
    source: DuckDBStore, target: ClickHouseStore, progress: Progress | None = None
) -> tuple[int, int, int]:
    """Copy every chunk not yet (fully) in `target`: (copied chunks, skipped chunks, rows copied)."""
    wanted = duckdb_counts(source)
    present = clickhouse_counts(target)
    run = secrets.token_hex(6)
    copied = skipped = rows = 0
    for done, (key, n) in enumerate(sorted(wanted.items()), start=1):
        table, project, day = key
        have = present.get(key, 0)
        if have == n:
            skipped += 1
        else:
            start, end = _day_bounds(day)
            params: dict[str, object] = {"p": project, "a": start, "b": end}
            if have:
                where = "project_id = {p:String} AND created_at >= {a:DateTime64(3, 'UTC')}"
                where += " AND created_at < {b:DateTime64(3, 'UTC')}"
                target.delete_where(table, where, params)
            cols = ", ".join(f'"{c}"' for c in column_names(table))
            # A fixed order: a retried insert is the same block and dedups against its token.
            order = "created_at, id" + (", version, sign" if table == "sessions" else "")
            data = source.fetch(
                f"SELECT {cols} FROM {table} WHERE project_id = $p AND created_at >= $a AND created_at < $b "
                f"ORDER BY {order}",
                params,
            )
            target.insert_rows(table, data, f"migrate:{run}:{table}:{project}:{day.isoformat()}")
            copied += 1
            rows += len(data)
        if progress is not None:
            progress(done, len(wanted), rows)
    return copied, skipped, rows


def verify(source: DuckDBStore, target: ClickHouseStore) -> None:
    """Raise MigrationError unless every (table, project, day) has the same row count in both."""
    want, have = duckdb_counts(source), clickhouse_counts(target)
    wrong = sorted(k for k in set(want) | set(have) if want.get(k, 0) != have.get(k, 0))
    if wrong:
        shown = ", ".join(
            f"{t}/{p}/{d}: {want.get((t, p, d), 0)} vs {have.get((t, p, d), 0)}" for t, p, d in wrong[:5]
        )
        raise MigrationError(f"row counts differ in {len(wrong)} (table, project, day) chunks: {shown}")


def switch_config(path: Path) -> None:
    """Set `backend = "clickhouse"` in the [storage] section of the TOML file at `path`."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    section = re.search(r"(?m)^\[storage\][ \t]*$", text)
    line = 'backend = "clickhouse"'
    if section is None:
        text = text.rstrip("\n") + ("\n\n" if text else "") + f"[storage]\n{line}\n"
    else:
        nxt = re.search(r"(?m)^\[", text[section.end() :])
        end = section.end() + (nxt.start() if nxt else len(text) - section.end())
        body = text[section.end() : end]
        if re.search(r"(?m)^backend\s*=", body):
            body = re.sub(r"(?m)^backend\s*=.*$", line, body, count=1)
        else:
            body = f"\n{line}" + body
        text = text[: section.end()] + body + text[end:]
    path.write_text(text, encoding="utf-8")


def progress_bar(out: TextIO = sys.stderr, width: int = 30) -> Progress:
    def show(done: int, total: int, rows: int) -> None:
        filled = width * done // max(total, 1)
        out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} chunks, {rows:,} rows copied")
        if done == total:
            out.write("\n")
        out.flush()

    return show


def migrate_events(cfg: Config, config_path: Path | None, progress: Progress | None = None) -> Report:
    """The whole command: copy, carry the watermark over, verify, switch the config."""
    ch = cfg.storage.clickhouse
    if not ch.url:
        raise MigrationError("set [storage.clickhouse] url (and database) before migrating")
    source = DuckDBStore(events_path(cfg.data_dir), memory_limit=cfg.storage.duckdb.memory_limit)
    try:
        target = ClickHouseStore(
            ch.url, database=ch.database, user=ch.user, password=ch.password, cluster=ch.cluster, node=ch.node
        )
        try:
            target.migrate()
            chunks = len(duckdb_counts(source))
            copied, skipped, rows = copy_events(source, target, progress)
            mark = source.watermark()
            target.set_watermark(mark)
            verify(source, target)
        finally:
            target.close()
    finally:
        source.close()
    switched = False
    if config_path is not None:
        switch_config(config_path)
        switched = True
    return Report(
        chunks=chunks,
        copied_chunks=copied,
        skipped_chunks=skipped,
        rows=rows,
        watermark=mark,
        switched=switched,
    )


def add_command(sub: Any, common: Callable[..., Any]) -> None:
    """Register `migrate-events` on the CLI's subparsers."""
    p = sub.add_parser(
        "migrate-events", parents=[common(json_flag=True)], help="copy the DuckDB events into ClickHouse"
    )
    p.add_argument("--to", choices=["clickhouse"], required=True, help="the target backend")
    p.set_defaults(handler=_cmd_migrate_events)


def _cmd_migrate_events(args: Any, cfg: Config) -> int:
    from openpanel_lite.cli import CliError, _emit
    from openpanel_lite.config import config_file_for_process

    path = config_file_for_process(args.config)
    try:
        report = migrate_events(cfg, path, progress_bar())
    except MigrationError as e:
        raise CliError(str(e)) from e
    note = (
        "config switched to clickhouse"
        if report.switched
        else 'no config file: set [storage] backend = "clickhouse"'
    )
    _emit(
        args,
        msgspec.to_builtins(report),
        f"copied {report.rows:,} rows in {report.copied_chunks} chunks "
        f"({report.skipped_chunks} already there); "
        f"counts verified; watermark {report.watermark}; {note}",
    )
    return 0
