"""Shared fixtures: a config pointing at a temporary data dir, and a free TCP port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from openpanel_lite.config import Config, load


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def config(data_dir: Path) -> Config:
    """Built-in defaults with the data dir in tmp and a small DuckDB memory limit."""
    return load(
        None,
        {},
        {
            "data.dir": str(data_dir),
            "storage.duckdb.memory_limit": "256MiB",
            "storage.duckdb.threads": 1,
            "geoip.auto_download": False,
        },
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()
