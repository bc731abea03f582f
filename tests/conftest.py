"""Shared fixtures: a config pointing at a temporary data dir, and a free TCP port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[object]:
    """A real server on 127.0.0.1 in this process (tests.harness.LiveServer); 127.0.0.1 is a trusted proxy."""
    from tests.harness import LiveServer
    from tests.ingest_support import live_config

    srv = LiveServer(live_config(tmp_path))
    yield srv
    srv.stop()


@pytest.fixture
def site(server: object) -> object:
    """Project "acme" (CORS example.com and *.example.com) with a write client."""
    from tests.ingest_support import Site

    return Site(server)  # type: ignore[arg-type]


# Every template under web/templates must be rendered by some test (tests/test_zz_templates.py checks
# the names recorded here at the end of the run).
RENDERED_TEMPLATES: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def _record_rendered_templates() -> Iterator[None]:
    import jinja2

    original = jinja2.Environment._load_template

    def recording(self: jinja2.Environment, name: str, globals: object) -> jinja2.Template:
        RENDERED_TEMPLATES.add(name)
        return original(self, name, globals)  # type: ignore[arg-type]

    jinja2.Environment._load_template = recording  # type: ignore[method-assign,assignment]
    yield
    jinja2.Environment._load_template = original  # type: ignore[method-assign]
