"""Which ClickHouse the tests use: a real server when OPENPANEL_TEST_CLICKHOUSE_URL is set (the only
place that reads it), else the chdb engine in this process, one data folder per test session (chdb
allows one engine per process), with a fresh database per test.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import msgspec

from openpanel_lite.config import ClickHouseConfig, Config

_CHDB_DIR: Path | None = None


def server_url() -> str | None:
    """The real server's URL from the environment, if any."""
    return os.environ.get("OPENPANEL_TEST_CLICKHOUSE_URL") or None


def chdb_url() -> str:
    """chdb://<one folder for the whole session>."""
    global _CHDB_DIR
    if _CHDB_DIR is None:
        _CHDB_DIR = Path(tempfile.mkdtemp(prefix="openpanel-chdb-"))
        atexit.register(shutil.rmtree, _CHDB_DIR, True)
    # `import chdb` reads ./config.xml; a stray one would point the engine at another data path.
    assert not Path("config.xml").exists(), "chdb would read ./config.xml: run the tests elsewhere"
    return f"chdb://{_CHDB_DIR}"


def engine_url() -> str:
    """Where ClickHouseStores under test connect: the real server, else chdb."""
    return server_url() or chdb_url()


def new_database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def drop_database(url: str, database: str) -> None:
    from openpanel_lite.storage.clickhouse import connect

    client = connect(url)
    try:
        client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    finally:
        client.close()


def clickhouse_config(base: Config, url: str, database: str) -> Config:
    """`base` with the event store moved to ClickHouse (url, database)."""
    ch = ClickHouseConfig(url=url, database=database, node="test-node")
    storage = msgspec.structs.replace(base.storage, backend="clickhouse", clickhouse=ch)
    return msgspec.structs.replace(base, storage=storage)
