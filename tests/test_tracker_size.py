"""op1.js as shipped: the terser build of its readable source, and at most 1.5 KB gzipped as served.

The build is scripts/build_tracker.sh with the terser pinned in tests/js/package.json (scripts/test.sh
installs it with `npm ci`); the same script, version and options always give the same bytes.
"""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

from litestar import Litestar
from litestar.testing import TestClient

from openpanel_lite.ingest.tracker_route import tracker_file, tracker_js

REPO = Path(__file__).resolve().parents[1]
TRACKER = REPO / "web/static/tracker/op1.js"
MAX_GZIPPED = 1536  # the 1.5 KB; upstream's op1.js is 3.3 KB
HEADER = (
    b"/*! op1.js v1, openpanel-lite tracker. Built from web/static/tracker/op1.src.js by: "
    b"bash scripts/build_tracker.sh */\n"
)


def served_tracker(query: str) -> bytes:
    with TestClient(Litestar(route_handlers=[tracker_js])) as client:
        reply = client.get(f"/op1.js{query}")
    assert reply.status_code == 200
    return reply.content


def test_served_tracker_is_at_most_1_5_kb_gzipped() -> None:
    for query in ("", f"?v={tracker_file().version}"):
        body = served_tracker(query)
        assert body == TRACKER.read_bytes()
        gzip_9 = subprocess.run(["gzip", "-9", "-n", "-c"], input=body, capture_output=True, check=True)
        packed = gzip_9.stdout
        assert gzip.decompress(packed) == body
        assert len(packed) <= MAX_GZIPPED, f"op1.js is {len(packed)} bytes gzipped, over {MAX_GZIPPED}"


def test_shipped_tracker_is_one_minified_line_under_a_header_naming_its_source() -> None:
    body = TRACKER.read_bytes()
    assert body.startswith(HEADER)
    code = body[len(HEADER) :]
    assert code.startswith(b"((e,t)=>{") and code.endswith(b"})(window,document);\n")
    assert code.count(b"\n") == 1
    assert b"//" not in code.replace(b"://", b"")  # no comment of the source survives


def test_committed_op1_js_is_the_build_of_op1_src_js() -> None:
    build = subprocess.run(
        ["bash", str(REPO / "scripts/build_tracker.sh"), "--stdout"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr.decode()
    assert build.stdout == TRACKER.read_bytes(), (
        "web/static/tracker/op1.js is stale: run `bash scripts/build_tracker.sh` (and remember op1.js v1 is "
        "frozen: a change ships as op2.js)"
    )
