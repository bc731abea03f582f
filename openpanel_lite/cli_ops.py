"""Operations subcommands of `openpanel`: backup, restore and GDPR profile erase.

Kept apart from cli.py so that file stays the admin commands; cli.py registers these in one call.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openpanel_lite.cli import CliError, _emit
from openpanel_lite.config import Config


def add_commands(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    bk = sub.add_parser(
        "backup", parents=[common(json_flag=True)], help="copy the data dir (works while the server runs)"
    )
    bk.add_argument("dest", help="an empty or new directory")
    bk.set_defaults(handler=_cmd_backup)

    rs = sub.add_parser("restore", parents=[common(json_flag=True)], help="put a backup in the data dir")
    rs.add_argument("src", help="a directory made by `openpanel backup`")
    rs.add_argument("--force", action="store_true", help="replace the data in a non-empty data dir")
    rs.set_defaults(handler=_cmd_restore)

    profile = sub.add_parser("profile", help="manage profiles").add_subparsers(dest="action", required=True)
    pe = profile.add_parser(
        "erase",
        parents=[common(json_flag=True)],
        help="GDPR: erase a profile, its events and sessions (server stopped; else use the dashboard)",
    )
    pe.add_argument("project_id")
    pe.add_argument("profile_id")
    pe.set_defaults(handler=_cmd_profile_erase)


def _cmd_backup(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite.backup import BackupError, backup

    dest = Path(args.dest)
    try:
        manifest = backup(cfg.data_dir, dest)
    except BackupError as e:
        raise CliError(str(e)) from None
    data = {"dest": str(dest), "files": manifest.files, "store_watermark": manifest.store_watermark}
    _emit(args, data, f"backup of {cfg.data_dir} written to {dest} ({len(manifest.files)} files)")
    return 0


def _cmd_restore(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite.backup import BackupError, restore

    try:
        manifest = restore(Path(args.src), cfg.data_dir, force=args.force)
    except BackupError as e:
        raise CliError(str(e)) from None
    data = {"data_dir": str(cfg.data_dir), "files": manifest.files, "created_at": manifest.created_at}
    _emit(args, data, f"restored the backup of {manifest.created_at} into {cfg.data_dir}")
    return 0


def _cmd_profile_erase(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite.erase import StoreInUse, erase_offline

    try:
        result = erase_offline(cfg, args.project_id, args.profile_id)
    except StoreInUse as e:
        raise CliError(str(e)) from None
    data = {
        "project_id": result.project_id,
        "profile_id": result.profile_id,
        "store_rows_deleted": result.store_rows_deleted,
        "spool_records_rewritten": result.spool_records_rewritten,
    }
    _emit(
        args,
        data,
        f"erased profile {result.profile_id}: {result.store_rows_deleted} rows deleted, "
        f"{result.spool_records_rewritten} spooled records rewritten",
    )
    return 0
