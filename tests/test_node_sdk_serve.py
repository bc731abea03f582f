"""The real npm @openpanel/sdk (Node) against a real `openpanel serve` subprocess; rows are read back
through GET /export/events with a read client, as an operator's script would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import free_port

JS_DIR = Path(__file__).parent / "js"


def cli(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "openpanel_lite", *args, "--json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def get_json(url: str, headers: dict[str, str]) -> Any:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_node_sdk_through_serve_and_export(data_dir: Path) -> None:
    d = str(data_dir)
    project = cli("project", "create", "Node App", "--domain", "app.example", "--data-dir", d)
    reader = cli("client", "create", project["project_id"], "--type", "read", "--data-dir", d)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OPENPANEL_GEOIP__AUTO_DOWNLOAD": "false",
        "OPENPANEL_INGEST__FLUSH_INTERVAL_MS": "100",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "openpanel_lite", "serve", "--data-dir", d, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                get_json(f"{base}/healthz", {})
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "server did not start"
                time.sleep(0.05)
        node = subprocess.run(
            [
                "node",
                str(JS_DIR / "node_sdk_calls.mjs"),
                base,
                project["client_id"],
                project["client_secret"],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=JS_DIR,
        )
        assert node.returncode == 0, node.stderr
        replies = json.loads(node.stdout)
        assert replies["track"] == {"deviceId": "", "sessionId": ""}

        headers = {
            "openpanel-client-id": reader["client_id"],
            "openpanel-client-secret": reader["client_secret"],
        }
        url = f"{base}/export/events?event=order_placed&includes=properties,groups,sdkName,device,profile"
        deadline = time.monotonic() + 10
        while True:
            body = get_json(url, headers)
            if body["data"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert body["meta"] == {"count": 1, "totalCount": 1, "pages": 1, "current": 1}
        [event] = body["data"]
        assert {k: event[k] for k in ("name", "deviceId", "sessionId", "profileId", "projectId")} == {
            "name": "order_placed",
            "deviceId": "",
            "sessionId": "",
            "profileId": "srv_1",
            "projectId": project["project_id"],
        }
        assert event["properties"] == {"total": "42", "currency": "EUR"}
        assert (event["groups"], event["sdkName"], event["device"]) == (["org_1"], "node", "server")
        profile = event["profile"]
        assert (profile["firstName"], profile["email"], profile["isExternal"]) == (
            "Ada",
            "ada@example.com",
            True,
        )
        assert profile["properties"]["logins"] == "4"  # 1, +5, -2
        assert profile["properties"]["plan"] == "pro"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=10)
    assert server.returncode == 0
