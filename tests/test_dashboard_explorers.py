"""The events, sessions and profiles explorers over real HTTP, on the event set of tests/explorer_support.py
(sent through /track): exact rows and values, filters, pagination, detail pages, access (404 to
non-members on every route), and in Chromium: hostile names, properties and paths render inert.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from openpanel_lite.meta import projects
from tests.dashboard_support import Client
from tests.explorer_support import (
    ARTIFACTS,
    PAGE_CHECKS,
    SAFARI_MAC,
    SITE,
    XSS_ATTR,
    XSS_IMG,
    XSS_NAME,
    XSS_NAME_IMG,
    XSS_SCRIPT,
    Seeded,
    admin,
    browse,
    member,
    needs_browser,
    outsider,
    seed,
    stamp,
    table,
    text_of,
    track,
)
from tests.harness import LiveServer
from tests.ingest_support import HANOVER_IP, Site, live_config

ZONE = ZoneInfo("Asia/Kolkata")  # +05:30: a whole-hour shift would hide a missing conversion


@dataclass
class Env:
    server: LiveServer
    data: Seeded
    client: Client
    device_b: str

    @property
    def pid(self) -> str:
        return self.data.site.project.id

    def get(self, path: str, **headers: str) -> tuple[int, str]:
        reply = self.client.get(f"/p/{self.pid}{path}", headers=headers or None)
        return reply.status, reply.text

    def local(self, seconds: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return self.data.at(seconds).astimezone(ZONE).strftime(fmt)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    server = LiveServer(live_config(tmp_path_factory.mktemp("explorers")))
    try:
        site = Site(server, unsafe_revenue=True)
        projects.update_project(server.runtime.meta, site.project.id, timezone=ZONE.key)
        data = seed(site)
        rows = server.rows(
            "SELECT DISTINCT device_id FROM events WHERE project_id = $p AND profile_id = 'user-1'",
            {"p": site.project.id},
        )
        client = member(server, site, admin(server))
        yield Env(server, data, client, rows[0][0])
    finally:
        server.stop()


def short(value: str) -> str:
    return value if len(value) <= 12 else value[:8] + "…"


def names(rows: list[list[str]]) -> list[str]:
    return [r[1] for r in rows[1:]]


# ------------------------------------------------------------------------------------------------
# events


def test_event_list_shows_every_event_newest_first(env: Env) -> None:
    status, html = env.get("/events")
    assert status == 200
    rows = table(html, "ex-events")
    assert rows[0] == [
        *("Time", "Event", "Properties", "Page", "Profile", "Session", "Device ID", "Location", "OS"),
        *("Browser", "Groups"),
    ]
    a, b = short(env.data.device_a), short(env.device_b)
    sa, sb = short(env.data.session_a), short(env.data.session_b)
    london = ["London, GB", "Windows", "Chrome", "–"]
    hanover = ["Hanover, DE", "Mac OS X", "Safari", "–"]
    assert rows[1:] == [
        [env.local(95), "revenue", "", "–", "user-1", sb, b, *hanover],
        [env.local(90), "purchase", "sku A1", "–", "user-1", sb, b, *hanover],
        [env.local(75), "add_to_cart", "sku A1", "–", "user-1", sb, b, *hanover],
        [env.local(60), "screen_view", "", "/home", "user-1", sb, b, *hanover],
        [env.local(59.9), "session_start", "", "/home", "user-1", sb, b, *hanover],
        [env.local(45), "signup", "plan pro seats 3", "/docs", a, sa, a, *london],
        [env.local(30), "screen_view", "", "/docs", a, sa, a, *london],
        [env.local(0), "screen_view", "", "/pricing", a, sa, a, *london],
        [env.local(-0.1), "session_start", "", "/pricing", a, sa, a, *london],
    ]
    assert "1–9 of 9 events" in html
    assert 'rel="next"' not in html and 'rel="prev"' not in html
    # The name filter offers the project's names, most frequent first.
    options = html.split('<select name="name">', 1)[1].split("</select>", 1)[0]
    assert [o.split(">", 1)[1] for o in options.split("</option>")[:-1]] == [
        "Any event", "screen_view", "session_start", "add_to_cart", "purchase", "revenue", "signup",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected", "chips"),
    [
        ("name=signup", ["signup"], ["event is signup"]),
        ("name=signup&name=purchase", ["purchase", "signup"], ["event is signup", "event is purchase"]),
        ("f=properties.sku,is,A1", ["purchase", "add_to_cart"], ["properties.sku is A1"]),
        ("key=plan&op=is&value=pro", ["signup"], ["properties.plan is pro"]),
        ("key=path&op=startsWith&value=/DOC", ["signup", "screen_view"], ["path startsWith /DOC"]),
        ("key=seats&op=gt&value=2", ["signup"], ["properties.seats gt 2"]),
        ("key=country&op=isNot&value=DE&name=screen_view", ["screen_view", "screen_view"],
         ["event is screen_view", "country isNot DE"]),
        ("f=country,is,DE&key=sku&op=isNotNull", ["purchase", "add_to_cart"],
         ["country is DE", "properties.sku isNotNull"]),
    ],
)  # fmt: skip
def test_event_filters(env: Env, query: str, expected: list[str], chips: list[str]) -> None:
    status, html = env.get(f"/events?{query}")
    assert status == 200
    assert names(table(html, "ex-events")) == expected
    assert text_of(html, "ex-chips") == " ".join(f"{c} ×" for c in chips) + " Clear all"
    assert f"1–{len(expected)} of {len(expected)} events" in html


def test_filter_chips_and_form_carry_the_state(env: Env) -> None:
    _, html = env.get("/events?name=signup&key=plan&op=is&value=pro")
    base = f"/p/{env.pid}/events"
    # Each chip removes only itself; the form keeps both as hidden fields, so another filter adds up.
    assert f'href="{base}?f=properties.plan%2Cis%2Cpro"' in html
    assert f'href="{base}?name=signup"' in html
    assert '<input type="hidden" name="name" value="signup">' in html
    assert '<input type="hidden" name="f" value="properties.plan,is,pro">' in html
    # An htmx request (the form, a chip, the pager) gets the results partial only.
    reply = env.client.get(f"/p/{env.pid}/events?key=plan&value=pro&name=signup", {"HX-Request": "true"})
    status, partial = reply.status, reply.text
    assert status == 200 and partial.lstrip().startswith('<div id="ex-results"')
    assert reply.headers["hx-push-url"] == f"/p/{env.pid}/events?name=signup&f=properties.plan%2Cis%2Cpro"
    assert names(table(partial, "ex-events")) == ["signup"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("key=seats&op=gt&value=abc", "f: gt on properties.seats compares numbers; &#39;abc&#39; is not one"),
        (
            "key=path&op=regex&value=(?=x)",
            "f: lookarounds, backreferences and \\Z are not supported (RE2 syntax)",
        ),
        (
            "key=entry_path&op=is&value=/x",
            "key: entry_path is a session field; events can be filtered by event fields",
        ),
        ("key=plan&op=like&value=x", "op: unknown operator &#39;like&#39;"),
        ("f=nonsense", "f: expected field,operator[,value], got &#39;nonsense&#39;"),
        ("page=0", "page: must be between 1 and 10000"),
    ],
)
def test_bad_filters_answer_400_naming_the_problem(env: Env, query: str, message: str) -> None:
    status, html = env.get(f"/events?{query}")
    assert status == 400
    assert f'<p class="error" role="alert">{message}</p>' in html
    assert table(html, "ex-events") == [] and "No events match" in html


def test_event_detail_shows_every_property(env: Env) -> None:
    _, html = env.get("/events?name=signup")
    event_id = html.split('data-event-id="', 1)[1].split('"', 1)[0]
    status, page = env.get(f"/events/{event_id}")
    assert status == 200
    assert text_of(page, "ex-properties") == "plan pro seats 3"
    detail = text_of(page, "ex-event")
    assert (
        f"ID {event_id} Time {env.data.at(45).astimezone(ZONE).strftime('%Y-%m-%d %H:%M:%S.%f IST')}"
        in detail
    )
    assert "Page https://example.com/docs Referrer https://www.google.com (Google)" in detail
    assert f"Profile {env.data.device_a} Session {env.data.session_a} Device ID {env.data.device_a}" in detail
    assert "Location London, England, GB OS Windows Browser Chrome Device desktop Groups –" in detail
    assert f'href="/p/{env.pid}/sessions/{env.data.session_a}"' in page
    # Unknown, malformed and other projects' ids are all just "not found".
    assert env.get("/events/6f1c1c1e-0000-4000-8000-000000000000")[0] == 404
    assert env.get("/events/not-a-uuid")[0] == 404


# ------------------------------------------------------------------------------------------------
# sessions


def test_session_list_has_the_columns_of_the_spec(env: Env) -> None:
    status, html = env.get("/sessions")
    assert status == 200
    rows = table(html, "ex-sessions")
    assert rows == [
        ["Started", "Session ID", "Profile", "Entry Page", "Exit Page", "Duration", "Bounce", "Referrer",
         "Location", "OS", "Browser", "Device", "Page views", "Events", "Revenue"],
        [env.local(60), short(env.data.session_b), "user-1", "/home", "–", "35s", "Yes", "Direct",
         "Hanover, DE", "Mac OS X", "Safari", "desktop", "1", "3", "19.99"],
        [env.local(0), short(env.data.session_a), short(env.data.device_a), "/pricing", "/docs", "45s", "No",
         "Google", "London, GB", "Windows", "Chrome", "desktop", "2", "1", "–"],
    ]  # fmt: skip
    assert "1–2 of 2 sessions" in html


def test_session_detail_is_a_timeline(env: Env) -> None:
    status, html = env.get(f"/sessions/{env.data.session_b}")
    assert status == 200
    summary = text_of(html, "ex-session")
    assert summary.startswith(f"Session {env.data.session_b} {env.local(60)} – {env.local(95, '%H:%M:%S')}")
    assert (
        "Profile user-1 Device ID " + env.device_b + " Entry page https://example.com/home Exit page – "
        "Duration 35s Bounce Yes Referrer Direct Location Hanover, Lower Saxony, DE OS Mac OS X 10.15.7 "
        "Browser Safari 17.0 Device desktop Apple Mac Page views 1 Events 3 Revenue 19.99"
    ) in summary
    assert text_of(html, "ex-timeline") == (
        f"{env.local(59.9, '%H:%M:%S')} session_start /home {env.local(60, '%H:%M:%S')} screen_view /home "
        f"{env.local(75, '%H:%M:%S')} add_to_cart sku A1 {env.local(90, '%H:%M:%S')} purchase sku A1 "
        f"{env.local(95, '%H:%M:%S')} revenue"
    )
    assert "5 events" in html
    assert env.get("/sessions/no-such-session")[0] == 404
    # The ?id= twin serves ids that cannot be a path segment, and any other id as well.
    assert env.get(f"/session?id={env.data.session_b}")[0] == 200
    assert env.get("/session?id=a%2Fb")[0] == 404


# ------------------------------------------------------------------------------------------------
# profiles


def test_profile_tabs_and_search(env: Env) -> None:
    _, html = env.get("/profiles")
    rows = table(html, "ex-profiles")
    assert [r[:7] for r in rows] == [
        ["Name", "Profile ID", "Type", "Location", "OS", "Browser", "Referrer"],
        ["Ada Lovelace ada@example.com", "user-1", "Identified", "Hanover, DE", "Mac OS X", "Safari", "–"],
    ]
    _, html = env.get("/profiles?tab=anonymous")
    a = env.data.device_a
    assert [r[:7] for r in table(html, "ex-profiles")[1:]] == [
        [a, short(a), "Anonymous", "London, GB", "Windows", "Chrome", "Google"]
    ]
    # First seen of the anonymous profile: its session_start, written from the event's time.
    assert table(html, "ex-profiles")[1][7:] == [env.local(-0.1), env.local(-0.1)]
    _, html = env.get("/profiles?tab=power-users")
    power = table(html, "ex-profiles")
    assert power[0][-1] == "Events"
    assert [(r[0], r[2], r[-1]) for r in power[1:]] == [
        ("Ada Lovelace ada@example.com", "Identified", "4"),
        (a, "Anonymous", "3"),
    ]
    for query, found in [("q=LOVE", ["user-1"]), ("q=ada%40example", ["user-1"]), ("q=zzz", [])]:
        _, html = env.get(f"/profiles?tab=identified&{query}")
        assert [r[1] for r in table(html, "ex-profiles")[1:]] == found
    assert "No profiles match “zzz”" in html
    _, html = env.get(f"/profiles?tab=power-users&q={a[:10]}")
    assert [r[-1] for r in table(html, "ex-profiles")[1:]] == ["3"]
    # An unknown tab shows the first one.
    assert env.get("/profiles?tab=nope")[1].count('aria-current="true">Identified') == 1


def test_profile_detail_metrics(env: Env) -> None:
    status, html = env.get("/profiles/user-1")
    assert status == 200
    page = text_of(html, "ex-profile")
    assert page == (
        f"Ada Lovelace Identified · user-1 First seen {env.local(59.9, '%Y-%m-%d %H:%M')} "
        f"Last seen {env.local(95, '%Y-%m-%d %H:%M')} Sessions 1 Events 4 Page views 1 "
        "Avg events / session 4 Avg duration 35s Bounce rate 100.0% Revenue 19.99 Name Ada Lovelace "
        "Email ada@example.com"
    )
    assert text_of(html, "ex-properties") == (
        "brand Apple browser Safari browser_version 17.0 city Hanover country DE device desktop "
        "latitude 52.37 longitude 9.74 model Mac os Mac OS X os_version 10.15.7 region Lower Saxony tier gold"
    )
    assert text_of(html, "ex-latest-events") == (
        f"{env.local(95, '%b %d %H:%M:%S')} revenue {env.local(90, '%b %d %H:%M:%S')} purchase "
        f"{env.local(75, '%b %d %H:%M:%S')} add_to_cart {env.local(60, '%b %d %H:%M:%S')} screen_view /home "
        f"{env.local(59.9, '%b %d %H:%M:%S')} session_start /home"
    )
    assert [r[1] for r in table(html, "ex-sessions")[1:]] == [short(env.data.session_b)]

    _, html = env.get(f"/profiles/{env.data.device_a}")
    assert (
        text_of(html, "ex-profile").split(" First seen")[0]
        == f"{env.data.device_a} Anonymous · {env.data.device_a}"
    )
    metrics = text_of(html, "ex-profile").split(env.local(0, "%Y-%m-%d %H:%M"), 1)[-1]
    assert metrics.endswith(
        "Sessions 1 Events 3 Page views 2 Avg events / session 3 Avg duration 45s Bounce rate 0.0% "
        "Revenue 0.00"
    )
    assert env.get("/profiles/nobody")[0] == 404
    assert env.get("/profile?id=")[0] == 404 and env.get("/profile")[0] == 404
    assert env.get("/profile?id=user-1")[0] == 200


# ------------------------------------------------------------------------------------------------
# pagination and access


def test_pagination_of_all_three_lists(env: Env) -> None:
    site = Site(env.server)
    member(env.server, site, env.client)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for i in range(51):  # 51 visitors, one page view each: 51 sessions, 102 events
        track(
            site,
            "screen_view",
            {"__timestamp": stamp(start + timedelta(seconds=i)), "__path": f"{SITE}/p{i:02d}"},
            **{"X-Forwarded-For": f"81.2.69.{i + 1}"},
        )
    env.server.flush()
    base = f"/p/{site.project.id}"

    page1 = env.client.get(f"{base}/events").text
    assert len(table(page1, "ex-events")) == 51 and "1–50 of 102 events" in page1
    assert f'href="{base}/events?page=2"' in page1 and 'rel="prev"' not in page1
    page3 = env.client.get(f"{base}/events?page=3").text
    assert [(r[1], r[3]) for r in table(page3, "ex-events")[1:]] == [
        ("screen_view", "/p00"),
        ("session_start", "/p00"),
    ]
    assert (
        "101–102 of 102 events" in page3
        and f'href="{base}/events?page=2"' in page3
        and 'rel="next"' not in page3
    )
    # A filter survives paging.
    filtered = env.client.get(f"{base}/events?name=screen_view&page=2").text
    assert [r[3] for r in table(filtered, "ex-events")[1:]] == ["/p00"]
    assert f'href="{base}/events?name=screen_view"' in filtered  # page 1 drops the page parameter

    sessions = env.client.get(f"{base}/sessions?page=2").text
    assert [r[3] for r in table(sessions, "ex-sessions")[1:]] == [
        "/p00"
    ] and "51–51 of 51 sessions" in sessions
    assert [r[3] for r in table(env.client.get(f"{base}/sessions").text, "ex-sessions")[1:3]] == [
        "/p50",
        "/p49",
    ]
    profiles = env.client.get(f"{base}/profiles?tab=anonymous&page=2").text
    assert len(table(profiles, "ex-profiles")) == 2 and "51–51 of 51 profiles" in profiles
    assert f'href="{base}/profiles?tab=anonymous"' in profiles
    # Beyond the last page: an empty page that still links back.
    beyond = env.client.get(f"{base}/sessions?page=9").text
    assert "No sessions yet" in beyond and 'rel="prev"' in beyond


def test_non_members_get_404_on_every_route(env: Env) -> None:
    _, html = env.get("/events?name=signup")
    event_id = html.split('data-event-id="', 1)[1].split('"', 1)[0]
    routes = [
        "/realtime",
        "/realtime/stream",
        "/events",
        "/events?name=signup&f=country,is,GB",
        f"/events/{event_id}",
        "/sessions",
        f"/sessions/{env.data.session_a}",
        f"/session?id={env.data.session_a}",
        "/profiles",
        "/profiles?tab=power-users",
        "/profiles/user-1",
        "/profile?id=user-1",
    ]
    stranger = outsider(env.server)
    for route in routes:
        if not route.endswith("/stream"):  # a member's stream never ends (tests/test_dashboard_realtime.py)
            assert env.client.get(f"/p/{env.pid}{route}").status == 200, route
        reply = stranger.get(f"/p/{env.pid}{route}")
        assert reply.status == 404, (route, reply.status)
        assert "user-1" not in reply.text and "signup" not in reply.text
        # Unknown projects look the same.
        assert stranger.get(f"/p/no-such-project{route}").status == 404
    # Without a login: to the login page.
    anonymous = Client(env.server)
    reply = anonymous.get(f"/p/{env.pid}/events")
    assert reply.status == 303 and reply.location == f"/login?next=/p/{env.pid}/events"


# ------------------------------------------------------------------------------------------------
# hostile data in Chromium


@pytest.mark.browser
@needs_browser
def test_hostile_values_render_inert_in_chromium(env: Env, tmp_path: Path) -> None:
    site = Site(env.server)
    member(env.server, site, env.client)
    evil = {"User-Agent": SAFARI_MAC, "X-Forwarded-For": HANOVER_IP}
    weird_id = f"team/{XSS_SCRIPT}"  # a '/' cannot be a path segment: the ?id= twin route serves it
    identify = {
        "profileId": weird_id,
        "firstName": XSS_SCRIPT,
        "lastName": XSS_IMG,
        "email": "evil@example.com",
        "properties": {"bio": XSS_ATTR, XSS_IMG: "x"},
    }
    assert site.track({"type": "identify", "payload": identify}, **evil).status == 200
    props = {"__path": f"{SITE}/{XSS_IMG}", XSS_IMG: XSS_ATTR, "k": XSS_SCRIPT}
    track(site, XSS_NAME, props, profile_id=weird_id, **evil)
    track(site, XSS_NAME_IMG, {"__path": f"{SITE}/b", "v": XSS_NAME_IMG}, profile_id=weird_id, **evil)
    track(
        site, "screen_view", {"__path": f"{SITE}/a", "__referrer": "javascript:window.__xss=1", XSS_ATTR: "1"}
    )
    env.server.flush()
    base = f"/p/{site.project.id}"
    html = env.client.get(f"{base}/events").text
    assert "<svg onload" not in html and "&#34;&gt;&lt;svg onload=window.__xss=1&gt;" in html
    assert (
        "<img src=/static" not in html and "&lt;img src=/static/favicon.svg onload=window.__xss=1&gt;" in html
    )
    assert "<script>window" not in html and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    event_id = html.split('data-event-id="', 1)[1].split('"', 1)[0]
    profile_url = f"{base}/profile?" + urllib.parse.urlencode({"id": weird_id})
    assert f'href="{profile_url.replace("&", "&amp;")}"' in html
    session_url = html.split(f'href="{base}/sessions/', 1)[1].split('"', 1)[0]
    profile_page = env.client.get(profile_url)
    assert profile_page.status == 200
    assert text_of(profile_page.text, "ex-profile").startswith(
        f"{XSS_SCRIPT} {XSS_IMG} Identified · {weird_id}"
    )
    pages = [
        f"{base}/events",
        f"{base}/events/{event_id}",
        f"{base}/events?" + urllib.parse.urlencode({"key": XSS_IMG, "op": "is", "value": XSS_ATTR}),
        f"{base}/sessions",
        f"{base}/sessions/{session_url}",
        f"{base}/profiles",
        f"{base}/profiles?tab=power-users&q=" + urllib.parse.quote(XSS_SCRIPT),
        profile_url,
        f"{base}/realtime",
    ]
    steps = []
    for i, page in enumerate(pages):
        steps += [{"goto": page}, {"eval": PAGE_CHECKS, "as": f"p{i}"}]
    out = browse(env.server, steps, tmp_path)
    assert out["pageErrors"] == [] and out["consoleErrors"] == []
    for i, page in enumerate(pages):
        checks = out["named"][f"p{i}"]
        assert checks["xss"] is None, page
        assert checks["injected"] == 0 and checks["handlers"] == 0 and checks["jsHrefs"] == 0, (page, checks)
    assert all(url.startswith(env.server.base) for url in out["requests"]), out["requests"]


CLICK_ADD = "document.querySelector('.ex-filters button[type=submit]').click()"
ROWS = "[...document.querySelectorAll('#ex-events tbody tr .ex-name')].map((a) => a.textContent)"


@pytest.mark.browser
@needs_browser
def test_filter_form_adds_up_over_htmx_in_chromium(env: Env, tmp_path: Path) -> None:
    steps: list[dict[str, object]] = [
        {"goto": f"/p/{env.pid}/events"},
        {"eval": "window.__page = 1"},  # survives htmx swaps, not a page load
        {"fill": "input[name=key]", "value": "sku"},
        {"fill": "input[name=value]", "value": "A1"},
        {"eval": CLICK_ADD},
        {"waitFor": "#ex-chips"},
        {"eval": ROWS, "as": "first"},
        {"select": "select[name=name]", "value": "purchase"},
        {"eval": CLICK_ADD},
        {"waitFor": "#ex-chips li:nth-child(3)"},
        {"eval": ROWS, "as": "second"},
        {"eval": "[location.search, window.__page]", "as": "url"},
        {"eval": "document.querySelector('#ex-chips a').click()"},  # remove the first chip again
        {"waitFor": "#ex-chips li:nth-child(2):last-child"},
        {"eval": ROWS, "as": "third"},
    ]
    out = browse(env.server, steps, tmp_path)
    assert out["pageErrors"] == [] and out["consoleErrors"] == []
    assert out["named"]["first"] == ["purchase", "add_to_cart"]
    assert out["named"]["second"] == ["purchase"]
    # The address bar shows the canonical state (HX-Push-Url), not the form's fields.
    assert out["named"]["url"] == ["?name=purchase&f=properties.sku%2Cis%2CA1", 1]
    assert out["named"]["third"] == ["purchase", "add_to_cart"]


@pytest.mark.browser
@needs_browser
def test_screenshots(env: Env, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    steps: list[dict[str, object]] = []
    for name, path in [("events", "/events"), ("sessions", "/sessions"), ("profiles", "/profiles/user-1")]:
        steps += [
            {"goto": f"/p/{env.pid}{path}"},
            {"eval": PAGE_CHECKS, "as": name},
            {"screenshot": str(ARTIFACTS / f"{name}.png")},
        ]
    out = browse(env.server, steps, tmp_path)
    assert out["pageErrors"] == [] and out["consoleErrors"] == []
    for name in ("events", "sessions", "profiles"):
        assert out["named"][name]["xss"] is None
        assert out["named"][name]["scripts"] == ["/static/vendor/htmx-2.0.11/htmx.min.js"]
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 20_000
