"""Where things live: the packaged web/ folder and the files inside the data dir."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

META_FILE = "meta.sqlite"
EVENTS_FILE = "events.duckdb"
SPOOL_FILE = "spool.sqlite"
SECRET_KEY_FILE = "secret.key"


def web_dir() -> Path:
    """The web/ folder (templates, static files): the wheel's copy, else the source checkout's."""
    packaged = _PACKAGE_DIR / "web"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent / "web"


def default_config_file() -> Path:
    """The commented openpanel.toml that lists every key with its default."""
    packaged = _PACKAGE_DIR / "openpanel.toml"
    if packaged.is_file():
        return packaged
    return _PACKAGE_DIR.parent / "openpanel.toml"


def meta_path(data_dir: Path) -> Path:
    return data_dir / META_FILE


def events_path(data_dir: Path) -> Path:
    return data_dir / EVENTS_FILE


def spool_path(data_dir: Path) -> Path:
    return data_dir / SPOOL_FILE
