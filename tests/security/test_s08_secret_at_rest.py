"""S08 secret-at-rest: a full run of a real `openpanel serve` subprocess (users and clients made with the
CLI; traffic from known test addresses with client secrets in headers and bodies; logins, failed logins,
exports), stopped with SIGTERM. Then every file under the data dir (SQLite and its WAL, DuckDB and its
WAL, the spool) and every line the process logged is searched for each plaintext secret (client secrets,
the password, login session tokens) and each test IP address, as text and as packed bytes: 0 hits."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.conftest import free_port
from tests.dashboard_support import Client
from tests.harness import HttpReply
from tests.ingest_support import CHROME_WIN
from tests.test_serve import wait_healthy

TEST_IPS = ["203.0.113.77", "198.51.100.23", "2001:db8::77", "192.0.2.200"]
PASSWORD = "s08 very secret passphrase"
EMAIL = "owner@example.com"


def _cli(data_dir: Path, *args: str, stdin: str | None = None) -> dict[str, str]:
    env = {**os.environ, "OPENPANEL_GEOIP__AUTO_DOWNLOAD": "false"}
    proc = subprocess.run(
        [sys.executable, "-m", "openpanel_lite", *args, "--data-dir", str(data_dir), "--json"],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, str] = json.loads(proc.stdout)
    return out


class _Server:
    """`openpanel serve` with 127.0.0.1 as its trusted proxy (so the test addresses reach the pipeline)."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "OPENPANEL_GEOIP__AUTO_DOWNLOAD": "false",
            "OPENPANEL_SERVER__TRUSTED_PROXIES": '["127.0.0.1/32"]',
            "OPENPANEL_SERVER__LOG_LEVEL": "debug",
        }
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openpanel_lite",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(self.port),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_healthy(self.base, self.proc, timeout=20)  # type: ignore[arg-type]
        # dashboard_support.Client only needs `cfg.server.port` of the server it talks to.
        self.cfg = SimpleNamespace(server=SimpleNamespace(port=self.port))

    def request(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> HttpReply:
        client = Client(self)  # type: ignore[arg-type]
        data = json.dumps(body).encode() if body is not None else None
        reply = client.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        return HttpReply(reply.status, reply.headers, reply.body)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.log.close()
        return code


def _needles(secrets: list[str]) -> dict[str, bytes]:
    out = {}
    for s in secrets:
        out[f"secret {s[:6]}…"] = s.encode()
    for ip in TEST_IPS:
        addr = ipaddress.ip_address(ip)
        out[f"ip {ip} text"] = ip.encode()
        out[f"ip {ip} packed"] = addr.packed
        if addr.version == 6:
            out[f"ip {ip} exploded"] = addr.exploded.encode()
    return out


def test_no_plaintext_secret_or_test_ip_at_rest_or_in_logs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _cli(data_dir, "user", "create", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    project = _cli(data_dir, "project", "create", "Acme", "--domain", "example.com", "--owner", EMAIL)
    read = _cli(data_dir, "client", "create", project["project_id"], "--type", "read")
    root = _cli(data_dir, "client", "create", project["project_id"], "--type", "root")
    secrets = [project["client_secret"], read["client_secret"], root["client_secret"], PASSWORD]
    log_path = tmp_path / "server.log"
    server = _Server(data_dir, log_path)
    try:
        pid, write_id, write_secret = project["project_id"], project["client_id"], project["client_secret"]
        for i, ip in enumerate(TEST_IPS * 5):
            headers = {
                "openpanel-client-id": write_id,
                "User-Agent": CHROME_WIN,
                "X-Forwarded-For": ip,
                "Origin": "https://example.com",
            }
            event = {
                "type": "track",
                "payload": {"name": "s08", "properties": {"__path": f"https://example.com/{i}"}},
            }
            assert server.request("POST", "/track", event, headers).status == 200
            # A server SDK: the secret in a header, the visitor's address as an override.
            sdk = {
                "openpanel-client-id": write_id,
                "openpanel-client-secret": write_secret,
                "openpanel-client-ip": ip,
            }
            assert server.request("POST", "/track", event, {**sdk, "User-Agent": CHROME_WIN}).status == 200
            # The secret and the address inside the body (clientSecret, __ip).
            body = {
                "type": "track",
                "clientId": write_id,
                "clientSecret": write_secret,
                "payload": {"name": "s08 body", "properties": {"__ip": ip}},
            }
            assert server.request("POST", "/track", body, {"User-Agent": CHROME_WIN}).status in (200, 401)
            identify = {"type": "identify", "payload": {"profileId": f"p{i}", "firstName": "Ada"}}
            assert server.request("POST", "/track", identify, headers).status in (200, 202)
            # Wrong secrets are logged nowhere either.
            wrong = {**sdk, "openpanel-client-secret": write_secret[:-4] + "0000"}
            assert server.request("POST", "/track", event, wrong).status == 401
        read_headers = {
            "openpanel-client-id": read["client_id"],
            "openpanel-client-secret": read["client_secret"],
        }
        for ip in TEST_IPS:
            assert (
                server.request(
                    "GET", f"/export/events?projectId={pid}", None, {**read_headers, "X-Forwarded-For": ip}
                ).status
                == 200
            )
        root_headers = {
            "openpanel-client-id": root["client_id"],
            "openpanel-client-secret": root["client_secret"],
        }
        assert server.request("GET", f"/api/p/{pid}/cards", None, root_headers).status == 200
        # Dashboard: a failed and a good login from test addresses; the session token is a secret too.
        sessions = []
        for ip, password in ((TEST_IPS[0], "wrong password here"), (TEST_IPS[1], PASSWORD)):
            client = Client(server)  # type: ignore[arg-type]
            client.csrf = client.get("/login", headers={"X-Forwarded-For": ip}).csrf_field()
            form = urllib.parse.urlencode({"email": EMAIL, "password": password, "csrf_token": client.csrf})
            client.request(
                "POST",
                "/login",
                form.encode(),
                {"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": ip},
            )
            if "op_session" in client.cookies:
                sessions.append(client.cookies["op_session"])
                assert client.get(f"/p/{pid}", headers={"X-Forwarded-For": ip}).status == 200
        assert len(sessions) == 1
        secrets += sessions
        # While it runs: the WAL files and the spool still hold what the stores have not absorbed.
        running = _scan(tmp_path, [p for p in data_dir.rglob("*") if p.is_file()], _needles(secrets))
    finally:
        assert server.stop() == 0
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"meta.sqlite", "events.duckdb"} <= names, names
    stopped = _scan(tmp_path, [*files, log_path], _needles(secrets))
    assert running["hits"] == [] and stopped["hits"] == []
    assert log_path.stat().st_size > 0  # the server did log
    print(
        f"\nS08: {running['files']} files while running, {stopped['files']} after (log included), "
        f"{(running['bytes'] + stopped['bytes']) / 1e6:.1f} MB scanned, "
        f"{len(_needles(secrets))} needles, 0 hits"
    )


def _scan(root: Path, paths: list[Path], needles: dict[str, bytes]) -> dict[str, Any]:
    hits, scanned = [], 0
    for path in paths:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:  # a WAL checkpointed away between listing and reading
            continue
        scanned += len(raw)
        hits += [(str(path.relative_to(root)), what) for what, needle in needles.items() if needle in raw]
    return {"hits": hits, "files": len(paths), "bytes": scanned}
