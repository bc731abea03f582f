"""The `openpanel` command: serve, config, migrate, and admin commands for users, projects, clients.

Every subcommand takes --config PATH and --data-dir DIR after its name; admin commands take --json
to print one JSON object for scripts. Errors print one line and exit 2 (usage/config) or 1.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from openpanel_lite import __version__, logs, migrate_events
from openpanel_lite import config as config_mod
from openpanel_lite.config import Config, ConfigError
from openpanel_lite.runtime import StartupError

Handler = Callable[[argparse.Namespace, Config], int]


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def _common(json_flag: bool = False) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config", metavar="PATH", help="config file (default: $OPENPANEL_CONFIG, ./openpanel.toml)"
    )
    parent.add_argument("--data-dir", metavar="DIR", help="data directory (default: ./data)")
    if json_flag:
        parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openpanel", description="openpanel-lite analytics server")
    parser.add_argument("--version", action="version", version=f"openpanel-lite {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[_common()], help="run the server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 3000)")
    serve.set_defaults(handler=_cmd_serve)

    cfg = sub.add_parser("config", parents=[_common(json_flag=True)], help="print the effective config")
    cfg.set_defaults(handler=_cmd_config)

    mig = sub.add_parser("migrate", parents=[_common(json_flag=True)], help="apply pending migrations")
    mig.set_defaults(handler=_cmd_migrate)

    user = sub.add_parser("user", help="manage dashboard users").add_subparsers(dest="action", required=True)
    uc = user.add_parser("create", parents=[_common(json_flag=True)], help="create a user")
    uc.add_argument("email")
    uc.add_argument("--name")
    uc.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    uc.set_defaults(handler=_cmd_user_create)

    project = sub.add_parser("project", help="manage projects").add_subparsers(dest="action", required=True)
    pc = project.add_parser("create", parents=[_common(json_flag=True)], help="create a project")
    pc.add_argument("name")
    pc.add_argument("--domain", required=True, help="the site's domain, e.g. example.com")
    pc.add_argument(
        "--cors", nargs="+", default=None, metavar="ORIGIN", help="allowed origins (default: domain)"
    )
    pc.add_argument("--timezone", default="UTC", help="IANA time zone for reports (default UTC)")
    pc.add_argument("--owner", metavar="EMAIL", help="make this user the project's owner")
    pc.set_defaults(handler=_cmd_project_create)

    client = sub.add_parser("client", help="manage API clients").add_subparsers(dest="action", required=True)
    cc = client.add_parser("create", parents=[_common(json_flag=True)], help="create an API client")
    cc.add_argument("project_id")
    cc.add_argument("--type", choices=["read", "write", "root"], default="write")
    cc.add_argument("--name")
    cc.set_defaults(handler=_cmd_client_create)
    _add_ops_commands(sub)
    migrate_events.add_command(sub, _common)  # issue 5; handler in migrate_events.py
    return parser


def _add_ops_commands(sub: Any) -> None:
    """backup, restore, profile erase (reliability: issue 6); handlers in cli_ops.py."""
    from openpanel_lite import cli_ops

    cli_ops.add_commands(sub, _common)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = _load_config(args)
    except ConfigError as e:
        print(f"openpanel: config error: {e}", file=sys.stderr)
        return 2
    logs.setup(cfg.server.log_level)
    handler: Handler = args.handler
    try:
        return handler(args, cfg)
    except (StartupError, CliError) as e:
        print(f"openpanel: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {
        "data.dir": getattr(args, "data_dir", None),
        "server.host": getattr(args, "host", None),
        "server.port": getattr(args, "port", None),
    }
    return config_mod.load_for_process(getattr(args, "config", None), overrides)


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(msgspec.json.encode(data).decode() + "\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# commands


def _cmd_serve(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite import server

    return server.run(cfg)


def _cmd_config(args: argparse.Namespace, cfg: Config) -> int:
    data = config_mod.to_dict(cfg, mask_secrets=True)
    _emit(args, data, config_mod.to_toml(data))
    return 0


def _open_meta(cfg: Config) -> Any:
    from openpanel_lite import paths
    from openpanel_lite.meta.db import MetaDB
    from openpanel_lite.runtime import ensure_data_dir

    ensure_data_dir(cfg.data_dir)
    db = MetaDB(paths.meta_path(cfg.data_dir), busy_timeout_ms=cfg.meta.busy_timeout_ms)
    db.migrate()
    return db


def _cmd_migrate(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite import paths
    from openpanel_lite.meta.db import MetaDB
    from openpanel_lite.runtime import ensure_data_dir
    from openpanel_lite.storage import open_store

    ensure_data_dir(cfg.data_dir)
    db = MetaDB(paths.meta_path(cfg.data_dir), busy_timeout_ms=cfg.meta.busy_timeout_ms)
    try:
        applied = db.migrate()
        version = db.user_version()
    finally:
        db.close()
    store = open_store(cfg)
    try:
        store.migrate()
    finally:
        store.close()
    _emit(
        args,
        {"meta_applied": applied, "meta_version": version, "store": cfg.storage.backend},
        f"metadata: applied {applied or 'nothing'} (now version {version}); event store: up to date",
    )
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CliError("no terminal to prompt for a password; use --password-stdin")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("passwords do not match")
    if not password:
        raise CliError("empty password")
    return password


def _cmd_user_create(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite.meta import MetaError, users

    password = _read_password(args)
    db = _open_meta(cfg)
    try:
        user = users.create_user(db, args.email, password, name=args.name)
    except MetaError as e:
        raise CliError(str(e)) from None
    finally:
        db.close()
    _emit(args, {"user_id": user.id, "email": user.email}, f"created user {user.email} ({user.id})")
    return 0


def _cmd_project_create(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite.meta import MetaError, clients, projects, users
    from openpanel_lite.snippet import tracking_snippet

    db = _open_meta(cfg)
    try:
        owner_id = None
        if args.owner:
            owner = users.get_user_by_email(db, args.owner)
            if owner is None:
                raise CliError(f"no user with email {args.owner}")
            owner_id = owner.id
        cors = args.cors if args.cors is not None else _default_cors(args.domain)
        project = projects.create_project(
            db, args.name, domain=args.domain, cors=cors, timezone=args.timezone, owner_user_id=owner_id
        )
        client, secret = clients.create_client(db, project.id, type="write", name=f"{project.name} Client")
    except MetaError as e:
        raise CliError(str(e)) from None
    finally:
        db.close()
    snippet = tracking_snippet(cfg.base_url, client.id)
    text = (
        f"project_id:    {project.id}\n"
        f"client_id:     {client.id}\n"
        f"client_secret: {secret}   (shown once: store it now; browsers do not need it)\n\n"
        f"Paste this into your site's <head>:\n\n{snippet}\n"
    )
    data = {"project_id": project.id, "client_id": client.id, "client_secret": secret, "snippet": snippet}
    _emit(args, data, text)
    return 0


def _default_cors(domain: str) -> list[str]:
    """A bare domain allows itself and its subdomains (https and http)."""
    host = domain.strip().lower().removeprefix("https://").removeprefix("http://").strip("/")
    host = host.removeprefix("www.")
    return [host, f"*.{host}"] if host else []


def _cmd_client_create(args: argparse.Namespace, cfg: Config) -> int:
    from openpanel_lite.meta import MetaError, clients

    db = _open_meta(cfg)
    try:
        client, secret = clients.create_client(db, args.project_id, type=args.type, name=args.name)
    except MetaError as e:
        raise CliError(str(e)) from None
    finally:
        db.close()
    data = {
        "client_id": client.id,
        "client_secret": secret,
        "type": client.type,
        "project_id": client.project_id,
    }
    _emit(
        args,
        data,
        f"client_id:     {client.id}\nclient_secret: {secret}   (shown once)\ntype:          {client.type}\n"
        f"project_id:    {client.project_id}",
    )
    return 0
