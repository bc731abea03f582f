"""`openpanel serve` as a real subprocess: readiness, /healthz, /metrics, clean stop, startup errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    # No GeoIP download from the npm registry during tests.
    env = {**os.environ, "OPENPANEL_GEOIP__AUTO_DOWNLOAD": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "openpanel_lite", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("content-type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read().decode()


def wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        try:
            status, _, _ = get(f"{base}/healthz")
            if status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"/healthz not 200 within {timeout}s")


@pytest.fixture
def server(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    proc = start("--data-dir", str(data_dir), "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    yield proc, base
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_serve_health_metrics_and_sigterm(server: tuple[subprocess.Popen[str], str], data_dir: Path) -> None:
    proc, base = server
    elapsed = wait_healthy(base, proc)
    assert elapsed < 5.0

    status, ctype, body = get(f"{base}/healthz")
    health = json.loads(body)
    assert status == 200 and ctype.startswith("application/json")
    assert health["status"] == "ok"
    assert health["meta"] == {"ok": True, "error": None}
    assert health["store"] == {"ok": True, "error": None}
    assert health["queues"] == {"store_writer": {"size": 0}, "spool_pending": {"size": 0}}
    assert health["failed"] == []

    status, ctype, text = get(f"{base}/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"openpanel_events", "openpanel_event_processing_duration_seconds", "openpanel_queue_size"} <= set(
        families
    )
    assert families["openpanel_event_processing_duration_seconds"].type == "histogram"
    buckets = {
        s.labels["le"]
        for s in families["openpanel_event_processing_duration_seconds"].samples
        if "le" in s.labels
    }
    assert buckets == {"0.001", "0.01", "0.1", "0.5", "1.0", "2.0", "5.0", "+Inf"}

    assert (data_dir / "meta.sqlite").is_file() and (data_dir / "events.duckdb").is_file()

    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 5.0
    assert f"listening on {base}" in out
    # Logs are JSON lines with time, level and event.
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"time", "level", "event"} <= set(rec) for rec in lines)
    assert "server_stopped" in {rec["event"] for rec in lines}


def test_sigint_also_exits_zero(server: tuple[subprocess.Popen[str], str]) -> None:
    proc, base = server
    wait_healthy(base, proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=5)
    assert proc.returncode == 0


def test_restart_on_existing_data_dir(data_dir: Path) -> None:
    for _ in range(2):
        port = free_port()
        proc = start("--data-dir", str(data_dir), "--port", str(port))
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=5)
        assert proc.returncode == 0


def one_line_failure(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=15)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_port_taken_fails_with_one_line(data_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = one_line_failure(start("--data-dir", str(data_dir), "--port", str(port)))
    assert line == f"openpanel: error: port {port} on 127.0.0.1 is already in use"


def test_unusable_data_dir_fails_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line_failure(start("--data-dir", str(blocker / "data"), "--port", str(free_port())))
    assert line.startswith(f"openpanel: error: data dir {blocker / 'data'} cannot be created")


def test_bad_config_fails_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[storage]\nbackend = 'postgres'\n")
    line = one_line_failure(start("--config", str(cfg), "--port", str(free_port())))
    assert line == "openpanel: config error: storage.backend: Invalid enum value 'postgres'"
