"""The realtime page over real HTTP: the first render from the store (exact counts, histogram, tables,
feed), the Server-Sent Events stream read with a plain HTTP client (an update within 2 s of a /track,
one render per second at most, heartbeats, the bus subscription released on disconnect and at the end
of the stream's life), access, and Chromium: live updates swapped in, hostile names inert, screenshot.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openpanel_lite.dashboard import realtime_stream
from tests.dashboard_support import Client
from tests.explorer_support import (
    ARTIFACTS,
    JS_DIR,
    PAGE_CHECKS,
    SAFARI_MAC,
    SITE,
    XSS_IMG,
    XSS_NAME,
    XSS_NAME_IMG,
    XSS_SCRIPT,
    admin,
    finish,
    flow_command,
    member,
    needs_browser,
    outsider,
    stamp,
    table,
    text_of,
    track,
)
from tests.harness import LiveServer
from tests.ingest_support import HANOVER_IP, Site, live_config


@dataclass
class Env:
    server: LiveServer
    client: Client

    def project(self) -> Site:
        """A fresh project (empty windows) with the admin as its owner."""
        site = Site(self.server)
        member(self.server, site, self.client)
        return site

    def subscribers(self) -> int:
        return len(self.server.runtime.ingest.bus)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    server = LiveServer(live_config(tmp_path_factory.mktemp("realtime")))
    try:
        yield Env(server, admin(server))
    finally:
        server.stop()


def wait_for(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.02)
    return False


# ------------------------------------------------------------------------------------------------
# a plain SSE reader


@dataclass
class Message:
    at: float  # seconds since the reader opened
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)
    retry: int | None = None


class SseReader:
    """GET the stream with http.client (it undoes the chunked encoding) and split it into messages."""

    def __init__(self, env: Env, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", env.server.cfg.server.port, timeout=10)
        cookie = "; ".join(f"{k}={v}" for k, v in env.client.cookies.items())
        self.started = time.monotonic()
        self.conn.request("GET", path, headers={"Cookie": cookie, "Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()

    def next(self, timeout: float) -> Message | None:
        """The next whole message, or None when none arrives within `timeout` (or the stream ended)."""
        sock = self.conn.sock
        assert sock is not None
        sock.settimeout(timeout)
        msg: Message | None = None
        data: list[str] = []
        try:
            while True:
                raw = self.resp.readline()
                if not raw:
                    return None
                line = raw.decode().rstrip("\r\n")
                if msg is None:
                    msg = Message(at=time.monotonic() - self.started)
                if line == "":
                    msg.data = "\n".join(data)
                    return msg
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    msg.comments.append(value)
                elif name == "event":
                    msg.event = value
                elif name == "data":
                    data.append(value)
                elif name == "retry":
                    msg.retry = int(value)
        except TimeoutError:
            return None

    def until(self, predicate: object, timeout: float) -> Message | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.next(left)
            if msg is None:
                return None
            if callable(predicate) and predicate(msg):
                return msg
        return None

    def close(self) -> None:
        self.conn.close()


def widget(html: str, element_id: str) -> str:
    """The markup of the <section id=…> (widgets do not nest sections)."""
    return html.split(f'id="{element_id}"', 1)[1].split("</section>", 1)[0]


def feed_names(html: str) -> list[str]:
    return re.findall(r'data-event-name="([^"]*)"', html)


# ------------------------------------------------------------------------------------------------
# the page


def test_empty_project_renders_zeroes(env: Env) -> None:
    site = env.project()
    reply = env.client.get(f"/p/{site.project.id}/realtime")
    assert reply.status == 200
    assert text_of(reply.text, "rt-visitors") == "0"
    assert "No events in the last 30 minutes" in reply.text
    assert "No visitors in the last 30 minutes" in reply.text
    assert reply.text.count('class="op-chart__bucket"') == 30
    assert f'data-stream="/p/{site.project.id}/realtime/stream"' in reply.text


def test_page_renders_the_last_30_minutes_from_the_store(env: Env) -> None:
    site = env.project()
    now = datetime.now(UTC).replace(microsecond=0)
    # Second 15 of their minutes: every event of a visit (session_start 100 ms earlier included) falls in
    # one minute of the histogram.
    a0 = (now - timedelta(minutes=3)).replace(second=15)
    b0 = (now - timedelta(minutes=1)).replace(second=15)

    def at(start: datetime, seconds: int) -> str:
        return stamp(start + timedelta(seconds=seconds))

    google = {"__referrer": "https://www.google.com/"}
    track(site, "screen_view", {"__timestamp": at(a0, 0), "__path": SITE + "/pricing", **google})
    track(site, "screen_view", {"__timestamp": at(a0, 10), "__path": SITE + "/docs"})
    track(site, "screen_view", {"__timestamp": at(a0, 20), "__path": SITE + "/pricing"})
    b = {"User-Agent": SAFARI_MAC, "X-Forwarded-For": HANOVER_IP}
    track(site, "screen_view", {"__timestamp": at(b0, 0), "__path": SITE + "/home"}, **b)
    track(site, "signup", {"__timestamp": at(b0, 5), "plan": "pro"}, **b)
    # 40 minutes ago: outside every window (and, being backdated, in no session).
    track(site, "old_event", {"__timestamp": stamp(now - timedelta(minutes=40))})
    env.server.flush()

    html = env.client.get(f"/p/{site.project.id}/realtime").text
    assert text_of(html, "rt-visitors") == "2"
    assert table(widget(html, "rt-countries"), "op-table") == [
        ["Country", "Sessions", "Events"],
        ["GB", "1", "3"],
        ["DE", "1", "2"],
    ]
    assert table(widget(html, "rt-referrers"), "op-table") == [
        ["Referrer", "Sessions", "Events"],
        ["Google", "1", "3"],
    ]
    assert table(widget(html, "rt-paths"), "op-table") == [
        ["Page", "Sessions", "Views"],
        ["https://example.com/pricing↗ open link", "1", "2"],
        ["https://example.com/docs↗ open link", "1", "1"],
        ["https://example.com/home↗ open link", "1", "1"],
    ]
    # A row opens the event list filtered by its value.
    assert f'href="/p/{site.project.id}/events?f=country%2Cis%2CGB"' in html
    assert f'href="/p/{site.project.id}/events?f=path%2Cis%2C%2Fpricing"' in html

    # The histogram: 30 minutes ending with the one the page was rendered in; A and B one minute each.
    rendered = datetime.fromisoformat(html.split('data-at="', 1)[1].split('"', 1)[0])
    minute = rendered.replace(second=0)
    tips = re.findall(r"<title>(\d\d:\d\d)\nSessions: (\d+)\nVisitors \((\d\d:\d\d)\): (\d+)</title>", html)
    expected = []
    for i in range(29, -1, -1):
        label = (minute - timedelta(minutes=i)).strftime("%H:%M")
        count = "1" if label in (a0.strftime("%H:%M"), b0.strftime("%H:%M")) else "0"
        expected.append((label, count, label, count))
    assert tips == expected

    assert feed_names(html) == [
        *("signup", "screen_view", "session_start"),
        *("screen_view", "screen_view", "screen_view", "session_start"),
    ]
    assert "7 in the last 30 minutes" in html
    assert "old_event" not in html


# ------------------------------------------------------------------------------------------------
# the stream


def test_stream_sends_an_update_within_2s_of_a_track_and_unsubscribes_on_disconnect(env: Env) -> None:
    site = env.project()
    reader = SseReader(env, f"/p/{site.project.id}/realtime/stream")
    try:
        assert reader.resp.status == 200
        assert reader.resp.getheader("content-type") == "text/event-stream; charset=utf-8"
        assert reader.resp.getheader("cache-control") == "no-store"
        hello = reader.next(5)
        assert hello is not None and hello.comments == ["connected"] and hello.retry == 3000
        first = [reader.next(5), reader.next(5)]
        assert [m.event for m in first if m] == ["stats", "feed"]
        assert first[0] is not None and '<p class="rt-count" id="rt-visitors">0</p>' in first[0].data
        assert env.subscribers() == 1

        sent = time.monotonic()
        track(site, "live_signup", {"__path": SITE + "/signup", "plan": "pro"})
        feed = stats = None
        while (feed is None or stats is None) and (msg := reader.next(5)) is not None:
            if feed is None and msg.event == "feed" and "live_signup" in msg.data:
                feed, feed_after = msg, time.monotonic() - sent
            # The stats follow once the writer has stored the event (flush interval: 1 s).
            if stats is None and msg.event == "stats" and 'id="rt-visitors">1<' in msg.data:
                stats, stats_after = msg, time.monotonic() - sent
        assert feed is not None and feed_after < 2.0
        assert feed_names(feed.data) == ["live_signup", "session_start"]
        assert stats is not None and stats_after < 3.5
        assert table(widget(stats.data, "rt-countries"), "op-table")[1:] == [["GB", "1", "1"]]
    finally:
        reader.close()
    assert wait_for(lambda: env.subscribers() == 0, 5), env.subscribers()


def test_stream_renders_at_most_once_per_second(env: Env) -> None:
    site = env.project()
    reader = SseReader(env, f"/p/{site.project.id}/realtime/stream")
    try:
        for _ in range(3):
            assert reader.next(5) is not None  # hello, stats, feed

        def burst() -> None:
            for i in range(8):
                track(site, f"burst_{i}", {"__path": SITE + "/"})
                time.sleep(0.15)

        sender = threading.Thread(target=burst)
        sender.start()
        # Read continuously while the burst goes on, so each message's time is its arrival time.
        messages = []
        while (msg := reader.next(3.0)) is not None and msg.at < 15:
            messages.append(msg)
        sender.join()
        last = [m for m in messages if m.event == "feed"][-1]
        feeds = [m for m in messages if m.event == "feed"]
        assert 2 <= len(feeds) <= 4, [m.at for m in feeds]
        gaps = [b.at - a.at for a, b in zip(feeds, feeds[1:], strict=False)]
        assert all(gap >= 0.95 for gap in gaps), gaps
        renders = sorted({round(m.at, 1) for m in messages if m.event})
        assert all(b - a >= 0.9 for a, b in zip(renders, renders[1:], strict=False)), renders
        assert feed_names(last.data)[:8] == [f"burst_{i}" for i in range(7, -1, -1)]
    finally:
        reader.close()


def test_heartbeat_comments_keep_a_quiet_stream_open(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realtime_stream, "HEARTBEAT_S", 0.3)
    site = env.project()
    reader = SseReader(env, f"/p/{site.project.id}/realtime/stream")
    try:
        for _ in range(3):
            assert reader.next(5) is not None
        beats = [reader.next(2), reader.next(2)]
        assert [m.comments for m in beats if m] == [["heartbeat"], ["heartbeat"]]
        assert [m.event for m in beats if m] == [None, None]
    finally:
        reader.close()
    assert wait_for(lambda: env.subscribers() == 0, 5)


def test_stream_ends_after_its_lifetime_and_releases_the_bus(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime_stream, "MAX_LIFETIME_S", 1.0)
    monkeypatch.setattr(realtime_stream, "HEARTBEAT_S", 0.2)
    site = env.project()
    reader = SseReader(env, f"/p/{site.project.id}/realtime/stream")
    try:
        ended_at = None
        for _ in range(50):
            if reader.next(3) is None:
                ended_at = time.monotonic() - reader.started
                break
        assert ended_at is not None and ended_at < 3
        assert reader.resp.isclosed() or reader.resp.read() == b""
    finally:
        reader.close()
    assert wait_for(lambda: env.subscribers() == 0, 5)


def test_close_all_ends_every_stream_at_once(env: Env) -> None:
    """What a server stop calls first: granian would otherwise wait for open streams to end."""
    site = env.project()
    readers = [SseReader(env, f"/p/{site.project.id}/realtime/stream") for _ in range(2)]
    try:
        for reader in readers:
            for _ in range(3):
                assert reader.next(5) is not None  # hello, stats, feed
        assert env.subscribers() == 2
        closed_at = time.monotonic()
        assert realtime_stream.close_all() == 2
        for reader in readers:
            assert reader.next(5) is None  # the response ends: no further message
        assert time.monotonic() - closed_at < 1.0
    finally:
        for reader in readers:
            reader.close()
    assert wait_for(lambda: env.subscribers() == 0, 5)
    assert realtime_stream.close_all() == 0


def test_stream_access(env: Env) -> None:
    site = env.project()
    path = f"/p/{site.project.id}/realtime/stream"
    assert outsider(env.server).get(path).status == 404
    assert outsider(env.server).get(f"/p/{site.project.id}/realtime").status == 404
    reply = Client(env.server).get(path)
    assert reply.status == 303 and reply.location == f"/login?next={path}"
    assert env.subscribers() == 0


# ------------------------------------------------------------------------------------------------
# Chromium


WAIT_VISITORS = """new Promise((resolve) => {
  const started = Date.now();
  const tick = () => {
    const el = document.getElementById('rt-visitors');
    if (el && el.textContent === '2') resolve(Date.now() - started);
    else if (Date.now() - started > 10000) resolve(null);
    else setTimeout(tick, 50);
  };
  tick();
})"""


@pytest.mark.browser
@needs_browser
def test_live_updates_in_chromium_stay_inert(env: Env, tmp_path: Path) -> None:
    site = env.project()
    now = datetime.now(UTC).replace(microsecond=0)
    b = {"User-Agent": SAFARI_MAC, "X-Forwarded-For": HANOVER_IP}
    # Some history for the histogram: two visitors over the last quarter hour.
    for minutes, path, headers in [
        (14, "/pricing", {}),
        (9, "/docs", {}),
        (6, "/home", b),
        (2, "/pricing", b),
    ]:
        at = stamp(now - timedelta(minutes=minutes))
        track(
            site,
            "screen_view",
            {"__timestamp": at, "__path": SITE + path, "__referrer": "https://news.ycombinator.com/"},
            **headers,
        )
    env.server.flush()
    base = f"/p/{site.project.id}"
    steps = [
        {"goto": f"{base}/realtime"},
        {"waitFor": "#rt-status[data-state=live]", "timeout": 10000},
        {"eval": PAGE_CHECKS, "as": "before"},
        {"waitFor": '.rt-feed__item[data-event-name="live_check"]', "timeout": 15000},
        {"eval": WAIT_VISITORS, "as": "visitors_ms"},
        {"eval": PAGE_CHECKS, "as": "after"},
        {
            "eval": "[...document.querySelectorAll('.rt-feed__name')].slice(0, 3).map((a) => a.textContent)",
            "as": "names",
        },
        {"screenshot": str(ARTIFACTS / "realtime.png")},
    ]
    ARTIFACTS.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        flow_command(env.server, steps, tmp_path),
        cwd=JS_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: env.subscribers() == 1, 60), "the page never opened its stream"
        time.sleep(0.3)
        visitor = {"X-Forwarded-For": "81.2.69.77"}
        track(site, XSS_NAME, {"__path": f"{SITE}/{XSS_IMG}", "k": XSS_SCRIPT}, **visitor)
        track(site, XSS_NAME_IMG, {"__path": SITE + "/x", XSS_IMG: XSS_SCRIPT}, **visitor)
        track(site, "live_check", {"__path": SITE + "/ok"}, **visitor)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out["pageErrors"] == [] and out["consoleErrors"] == []
    for state in ("before", "after"):
        checks = out["named"][state]
        assert checks["xss"] is None
        assert checks["injected"] == 0 and checks["handlers"] == 0 and checks["jsHrefs"] == 0, checks
        assert checks["scripts"] == ["/static/js/realtime.js", "/static/vendor/htmx-2.0.11/htmx.min.js"]
    assert out["named"]["visitors_ms"] is not None  # the stats were swapped in too (B and the new visitor)
    assert out["named"]["names"] == ["live_check", XSS_NAME_IMG, XSS_NAME]
    assert all(url.startswith(env.server.base) for url in out["requests"]), out["requests"]
    # One stream for the tab, gone with the browser.
    assert out["requests"].count(f"{env.server.base}{base}/realtime/stream") == 1
    assert wait_for(lambda: env.subscribers() == 0, 10)
    assert (ARTIFACTS / "realtime.png").stat().st_size > 20_000
