"""The dashboard in headless Chromium: onboarding -> new project -> setup page with the snippet, which
turns green once the project's first event arrives -> the overview and realtime pages show that visit.
Screenshots go to test-artifacts/ at the repo root."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from openpanel_lite.meta import clients, projects
from openpanel_lite.snippet import tracking_snippet
from tests.harness import LiveServer

REPO = Path(__file__).resolve().parent.parent
JS_DIR = REPO / "tests" / "js"
ARTIFACTS = REPO / "test-artifacts"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"
)
# Sent from the setup page itself: a same-origin POST /track, as a site on this host would send it.
TRACK_JS = """
fetch('/track', {method: 'POST', headers: {'content-type': 'application/json',
  'openpanel-client-id': document.querySelector('pre.snippet').dataset.clientId},
  body: JSON.stringify({type: 'track', payload: {name: 'screen_view',
    properties: {__path: location.href, __title: 'Setup'}}})}).then(r => r.status)
"""


CARD_VALUE = "document.querySelector('#op-card-%s .op-card__value').textContent.trim()"


def walk(tmp_path: Path, origin: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    spec = tmp_path / "flow.json"
    spec.write_text(json.dumps({"origin": origin, "userAgent": USER_AGENT, "steps": steps}))
    proc = subprocess.run(
        ["node", str(JS_DIR / "dashboard_flow.mjs"), str(spec)],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=JS_DIR,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def test_onboarding_to_tracking_setup_in_chromium(server: LiveServer, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    port = server.cfg.server.port
    shots = [ARTIFACTS / f"dashboard-setup-{name}.png" for name in ("waiting", "green")]
    for shot in shots:
        shot.unlink(missing_ok=True)
    out = walk(
        tmp_path,
        server.base,
        [
            {"goto": "/onboarding"},
            {"fill": "input[name=email]", "value": "owner@example.com"},
            {"fill": "input[name=name]", "value": "Olivia <b>Owner</b>"},
            {"fill": "input[name=password]", "value": "a long passphrase"},
            {"fill": "input[name=password_confirm]", "value": "a long passphrase"},
            {"submit": "button[type=submit]"},
            {"url": "after_onboarding"},
            {"fill": "input[name=name]", "value": "Acme Shop"},
            {"fill": "input[name=domain]", "value": f"127.0.0.1:{port}"},
            {"select": "select[name=timezone]", "value": "Europe/Berlin"},
            {"submit": "form[action='/projects'] button[type=submit]"},
            {"url": "setup"},
            {"waitFor": "#setup-status.waiting"},
            {"eval": "document.querySelector('pre.snippet').textContent", "as": "snippet"},
            {"eval": "document.querySelector('.user-menu summary').textContent", "as": "user"},
            {"screenshot": str(shots[0])},
            {"eval": TRACK_JS, "as": "track_status"},
            # The writer flushes within 1 s and the status partial polls every 2 s.
            {"waitFor": "#setup-status.ok", "timeout": 15000},
            {"eval": "document.querySelector('#setup-status').textContent.trim()", "as": "status"},
            {"screenshot": str(shots[1])},
            # The visit shows on the overview and on the realtime page.
            {"goto": "/p/acme-shop"},
            {"waitFor": "#op-card-unique_visitors .op-card__value"},
            {"eval": CARD_VALUE % "unique_visitors", "as": "visitors"},
            {"eval": CARD_VALUE % "pageviews", "as": "views"},
            {"screenshot": str(ARTIFACTS / "dashboard-overview-first-visit.png")},
            {"goto": "/p/acme-shop/realtime"},
            {"waitFor": "#rt-visitors"},
            {"eval": "document.querySelector('#rt-visitors').textContent.trim()", "as": "live"},
            {"screenshot": str(ARTIFACTS / "dashboard-realtime-first-visit.png")},
        ],
    )
    named = out["named"]
    assert named["after_onboarding"] == f"{server.base}/projects/new"
    assert named["setup"] == f"{server.base}/p/acme-shop/setup"
    assert named["user"] == "Olivia <b>Owner</b>"  # shown as text, not markup
    project = projects.get_project(server.runtime.meta, "acme-shop")
    assert project is not None
    assert (project.name, project.timezone, project.cors) == (
        "Acme Shop",
        "Europe/Berlin",
        (f"127.0.0.1:{port}",),
    )
    [client] = clients.list_clients(server.runtime.meta, "acme-shop")
    assert named["snippet"] == tracking_snippet(server.base, client.id)
    assert named["track_status"] == 200
    assert named["status"].startswith("Events are arriving.")
    assert (named["visitors"], named["views"], named["live"]) == ("1", "1", "1")
    assert all(shot.stat().st_size > 5000 for shot in shots)
    assert out["pageErrors"] == [] and out["consoleErrors"] == []
    # Nothing but this server was asked for anything (no CDN, fonts or images from elsewhere).
    assert out["requests"] and all(url.startswith(server.base + "/") for url in out["requests"])
