"""CLI round trips: `openpanel ... --json` in a real subprocess against a temporary data dir."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import apsw

from openpanel_lite.meta.db import MetaDB
from openpanel_lite.meta.secrets import verify_secret

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def run_cli(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openpanel_lite", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def run_json(*args: str, stdin: str | None = None) -> dict[str, Any]:
    proc = run_cli(*args, "--json", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # exactly one JSON object
    data: dict[str, Any] = json.loads(lines[0])
    return data


def all_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def test_user_project_client_round_trip(data_dir: Path) -> None:
    d = str(data_dir)
    user = run_json(
        "user",
        "create",
        "Owner@Example.com",
        "--password-stdin",
        "--data-dir",
        d,
        stdin="correct horse battery\n",
    )
    assert set(user) == {"user_id", "email"}
    assert user["email"] == "owner@example.com"

    proj = run_json(
        "project",
        "create",
        "Demo",
        "--domain",
        "example.com",
        "--owner",
        "owner@example.com",
        "--data-dir",
        d,
    )
    assert set(proj) == {"project_id", "client_id", "client_secret", "snippet"}
    assert proj["project_id"] == "demo"
    assert UUID_RE.match(proj["client_id"])
    assert re.fullmatch(r"sec_[0-9a-f]{20}", proj["client_secret"])
    assert f'"clientId":"{proj["client_id"]}"' in proj["snippet"]
    assert 'src="http://127.0.0.1:3000/op1.js?v=' in proj["snippet"]

    # The same name again gets a suffixed slug, as OpenPanel does.
    again = run_json("project", "create", "Demo", "--domain", "example.org", "--data-dir", d)
    assert re.fullmatch(r"demo-\d{4}", again["project_id"])

    read = run_json("client", "create", "demo", "--type", "read", "--name", "exporter", "--data-dir", d)
    assert set(read) == {"client_id", "client_secret", "type", "project_id"}
    assert (read["type"], read["project_id"]) == ("read", "demo")
    assert UUID_RE.match(read["client_id"]) and read["client_id"] != proj["client_id"]

    # The stored hashes verify against the printed secrets, and nothing plaintext is at rest.
    db = MetaDB(data_dir / "meta.sqlite")
    try:
        for client_id, secret in (
            (proj["client_id"], proj["client_secret"]),
            (read["client_id"], read["client_secret"]),
        ):
            row = db.query("SELECT secret_hash, type FROM clients WHERE id = :id", {"id": client_id})
            assert len(row) == 1
            stored = row[0][0]
            assert re.fullmatch(r"[0-9a-f]{32}\.[0-9a-f]{64}", stored)
            assert verify_secret(secret, stored)
            assert not verify_secret(secret + "x", stored)
    finally:
        db.close()
    blob = all_bytes(data_dir)
    for secret in (proj["client_secret"], read["client_secret"], "correct horse battery"):
        assert secret.encode() not in blob


def test_client_create_for_unknown_project_is_one_line_error(data_dir: Path) -> None:
    proc = run_cli("client", "create", "nope", "--type", "read", "--data-dir", str(data_dir))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("openpanel: error: ") and "nope" in lines[0]


def test_duplicate_user_is_one_line_error(data_dir: Path) -> None:
    d = str(data_dir)
    run_json("user", "create", "a@b.co", "--password-stdin", "--data-dir", d, stdin="password123\n")
    proc = run_cli("user", "create", "a@b.co", "--password-stdin", "--data-dir", d, stdin="password123\n")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "a@b.co" in proc.stderr


def test_config_prints_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 4567\n[storage.clickhouse]\npassword = "hunter2hunter2"\n')
    data = run_json("config", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert data["server"]["port"] == 4567
    assert data["data"]["dir"] == str(tmp_path / "d")
    assert data["storage"]["clickhouse"]["password"] == "********"
    text = run_cli("config", "--config", str(cfg)).stdout
    assert "port = 4567" in text and "hunter2hunter2" not in text and "[storage.clickhouse]" in text


def test_config_error_is_one_line_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nport = 'x'\n")
    proc = run_cli("config", "--config", str(cfg))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "openpanel: config error: server.port: Expected `int`, got `str`"


def test_migrate_twice_is_a_no_op(data_dir: Path) -> None:
    first = run_json("migrate", "--data-dir", str(data_dir))
    assert first["meta_applied"] and first["meta_version"] == max(first["meta_applied"])
    second = run_json("migrate", "--data-dir", str(data_dir))
    assert second["meta_applied"] == [] and second["meta_version"] == first["meta_version"]
    assert (data_dir / "meta.sqlite").is_file() and (data_dir / "events.duckdb").is_file()
    con = apsw.Connection(str(data_dir / "meta.sqlite"))
    assert con.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    con.close()


def test_json_ids_are_unique_per_run(data_dir: Path) -> None:
    d = str(data_dir)
    a = run_json("project", "create", "Shop", "--domain", "shop.example", "--data-dir", d)
    b = run_json("client", "create", a["project_id"], "--type", "root", "--data-dir", d)
    assert uuid.UUID(a["client_id"]) != uuid.UUID(b["client_id"])
