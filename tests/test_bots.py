"""Bot handling: hard matches (upstream's oracle, the whole MIT list, case-insensitivity) and soft signals."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from openpanel_lite.ingest.bots import (
    ALLOWED_PATTERNS,
    BOT_TYPE_BY_TAG,
    HEADLESS_PATTERNS,
    HEADLESS_REASON,
    BotMatch,
    _crawler_list,
    bot_properties,
    detect_bot,
    soft_bot_reasons,
)
from openpanel_lite.ingest.headers import LowerCaseHeaders
from openpanel_lite.ingest.useragent import parse_user_agent

CHROME_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Mobile/15E148 Safari/604.1"
)
BROWSER_HEADERS = {
    "sec-ch-ua": '"Chromium";v="120", "Not_A Brand";v="8"',
    "sec-fetch-mode": "no-cors",
    "sec-fetch-site": "cross-site",
    "accept-language": "en-GB,en;q=0.9",
}

PEOPLE_AND_APPS = [
    CHROME_DESKTOP,
    FIREFOX_DESKTOP,
    IPHONE_SAFARI,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; CUBOT P40) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 Instagram 312.0.0.32.112 (iPhone14,5; iOS 17_2; en_US; en; scale=3.00; 1170x2532)",
    "App/1.0 (Android 14; Model=Pixel 8 Pro)",
]


def _listed_entries() -> list[dict[str, Any]]:
    raw = resources.files("crawleruseragents").joinpath("crawler-user-agents.json").read_text()
    entries: list[dict[str, Any]] = json.loads(raw)
    return entries


# --- hard bots -------------------------------------------------------------------------------


@pytest.mark.parametrize("ua", ["node", "undici", "axios/1.6.0", "PostmanRuntime/7.0"])
def test_oracle_backend_clients_pass(ua: str) -> None:
    assert detect_bot(ua) is None


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        # Not in the MIT list as bare words: uap-core's Spider device family catches these.
        ("Googlebot", BotMatch(name="Googlebot", type="Crawler")),
        ("some-crawler/1.0", BotMatch(name="some-crawler", type="Crawler")),
        # Listed: `Ahrefs(Bot|SiteAudit)` tagged seo, `ZmEu` tagged scanner.
        ("AhrefsBot", BotMatch(name="AhrefsBot", type="Crawler")),
        ("ZmEu", BotMatch(name="ZmEu", type="Security Checker")),
    ],
)
def test_oracle_bots(ua: str, expected: BotMatch) -> None:
    assert detect_bot(ua) == expected


@pytest.mark.parametrize("ua", PEOPLE_AND_APPS)
def test_people_and_apps_are_not_bots(ua: str) -> None:
    assert detect_bot(ua) is None


@pytest.mark.parametrize("ua", ["", None])
def test_missing_ua_is_not_a_hard_bot(ua: str | None) -> None:
    assert detect_bot(ua) is None


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            BotMatch(name="Googlebot", type="Search bot"),
        ),
        (
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
            BotMatch(name="GPTBot", type="AI crawler"),
        ),
        ("facebookexternalhit/1.1", BotMatch(name="facebookexternalhit", type="Social Media Agent")),
        (
            "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
            BotMatch(name="UptimeRobot", type="Site Monitor"),
        ),
        # Both `node-fetch` and `Fetch\/` match; the longer pattern wins and names the whole token.
        ("node-fetch/1.0", BotMatch(name="node-fetch", type="HTTP library")),
        ("python-requests/2.31.0", BotMatch(name="python-requests", type="HTTP library")),
        # Name cleanup: cut at "(" and at "/", drop a URL scheme.
        ("Riddler (http://riddler.io/about)", BotMatch(name="Riddler", type="Security Checker")),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/92.0.4515.107 Safari/537.36 (compatible; +https://developers.cloudflare.com/security-center/)",
            BotMatch(name="developers.cloudflare.com", type="Security Checker"),
        ),
    ],
)
def test_listed_bots_name_and_type(ua: str, expected: BotMatch) -> None:
    assert detect_bot(ua) == expected


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        # Upstream matches its regexes case-sensitively (facts §10.13); the list's own casing is not the UA's.
        ("zmeu", BotMatch(name="zmeu", type="Security Checker")),
        ("Mozilla/5.0 (compatible; GOOGLEBOT/2.1)", BotMatch(name="GOOGLEBOT", type="Search bot")),
        ("Mozilla/5.0 (compatible; CLAUDEBOT/1.0)", BotMatch(name="CLAUDEBOT", type="AI crawler")),
    ],
)
def test_matching_ignores_case(ua: str, expected: BotMatch) -> None:
    assert detect_bot(ua) == expected


def test_allow_list_removes_only_the_oracle_pattern_and_headless_browsers() -> None:
    kept = {entry.pattern for entry in _crawler_list().entries}
    assert frozenset({"axios"}) == ALLOWED_PATTERNS
    assert "axios" not in kept and not kept & HEADLESS_PATTERNS
    listed = {entry["pattern"] for entry in _listed_entries()}
    assert listed >= HEADLESS_PATTERNS
    assert len(kept) == len(listed) - 1 - len(HEADLESS_PATTERNS)
    assert detect_bot("axios/0.19.0") is None


def test_headless_browsers_are_marked_not_dropped() -> None:
    headless = [e for e in _listed_entries() if e["pattern"] in HEADLESS_PATTERNS]
    instances = [i for e in headless for i in e["instances"]]
    assert len(instances) >= 5
    for ua in instances:
        assert HEADLESS_REASON in soft_bot_reasons(ua, {}, False, None) or parse_user_agent(ua).is_server, ua
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0"
    assert detect_bot(chrome) is None
    full_headers = {"sec-ch-ua": "x", "sec-fetch-mode": "cors", "accept-language": "en"}
    assert bot_properties(soft_bot_reasons(chrome, full_headers, False, None)) == {
        "__bot_reasons": "ua:headless"
    }
    assert bot_properties(soft_bot_reasons(chrome, {}, False, None)) == {
        "__bot_reasons": "ua:headless,header:missing_sec_ch_ua,header:missing_sec_fetch,"
        "header:missing_accept_language",
        "__bot": "1",
    }


def test_every_listed_instance_is_a_bot_and_both_regex_engines_agree() -> None:
    """The Rust set and Python's re read every pattern the same way on the list's own examples."""
    entries = _crawler_list().entries
    checked = 0
    for listed in _listed_entries():
        if listed["pattern"] in ALLOWED_PATTERNS | HEADLESS_PATTERNS:
            continue
        for instance in listed["instances"]:
            index = _crawler_list().first_match(instance)
            assert index is not None, instance
            assert re.search(entries[index].pattern, instance, re.IGNORECASE), (
                entries[index].pattern,
                instance,
            )
            match = detect_bot(instance)
            assert match is not None and match.name, instance
            checked += 1
    assert checked > 2000


def test_every_tag_has_a_type() -> None:
    tags = {tag for entry in _listed_entries() for tag in entry.get("tags", [])}
    assert tags <= set(BOT_TYPE_BY_TAG)


def test_detect_bot_cache_returns_the_same_object() -> None:
    ua = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) cache-probe"
    first = detect_bot(ua)
    assert first == BotMatch(name="bingbot", type="Search bot")
    hits = detect_bot.cache_info().hits
    assert detect_bot(ua) is first
    assert detect_bot.cache_info().hits == hits + 1


# --- soft signals ----------------------------------------------------------------------------


def test_full_browser_headers_raise_nothing() -> None:
    assert soft_bot_reasons(CHROME_DESKTOP, BROWSER_HEADERS, False, None) == []


def test_chromium_without_sec_ch_ua() -> None:
    headers = {k: v for k, v in BROWSER_HEADERS.items() if k != "sec-ch-ua"}
    assert soft_bot_reasons(CHROME_DESKTOP, headers, False, None) == ["header:missing_sec_ch_ua"]


@pytest.mark.parametrize(
    "ua",
    [
        FIREFOX_DESKTOP,
        IPHONE_SAFARI,
        # "Chrome/" on iOS is still WebKit underneath and sends no client hints.
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Chrome/120.0 Mobile/15E148 Safari/604.1",
    ],
)
def test_sec_ch_ua_only_expected_from_chromium_outside_ios(ua: str) -> None:
    headers = {k: v for k, v in BROWSER_HEADERS.items() if k != "sec-ch-ua"}
    assert soft_bot_reasons(ua, headers, False, None) == []


def test_sec_fetch_needs_neither_mode_nor_site() -> None:
    only_site = {k: v for k, v in BROWSER_HEADERS.items() if k != "sec-fetch-mode"}
    assert soft_bot_reasons(CHROME_DESKTOP, only_site, False, None) == []
    neither = {k: v for k, v in only_site.items() if k != "sec-fetch-site"}
    assert soft_bot_reasons(CHROME_DESKTOP, neither, False, None) == ["header:missing_sec_fetch"]


def test_missing_or_empty_accept_language() -> None:
    without = {k: v for k, v in BROWSER_HEADERS.items() if k != "accept-language"}
    assert soft_bot_reasons(CHROME_DESKTOP, without, False, None) == ["header:missing_accept_language"]
    assert soft_bot_reasons(CHROME_DESKTOP, {**without, "accept-language": " "}, False, None) == [
        "header:missing_accept_language"
    ]


def test_header_names_in_any_case() -> None:
    shouted = {k.title(): v for k, v in BROWSER_HEADERS.items()}
    assert soft_bot_reasons(CHROME_DESKTOP, shouted, False, None) == []


def test_lower_case_headers_are_looked_up_without_a_scan() -> None:
    # The ingest routes pass LowerCaseHeaders (ASGI names are lower case): the same values give the
    # same verdict, and a key in another case is not there, because no such request exists.
    lower = LowerCaseHeaders(BROWSER_HEADERS)
    assert soft_bot_reasons(CHROME_DESKTOP, lower, False, None) == []
    shouted = LowerCaseHeaders({k.title(): v for k, v in BROWSER_HEADERS.items()})
    assert soft_bot_reasons(CHROME_DESKTOP, shouted, False, None) == [
        "header:missing_sec_ch_ua",
        "header:missing_sec_fetch",
        "header:missing_accept_language",
    ]


def test_datacenter_ip_with_and_without_asn() -> None:
    assert soft_bot_reasons(CHROME_DESKTOP, BROWSER_HEADERS, True, 16509) == ["datacenter_ip:AS16509"]
    assert soft_bot_reasons(CHROME_DESKTOP, BROWSER_HEADERS, True, None) == ["datacenter_ip"]
    assert soft_bot_reasons(CHROME_DESKTOP, BROWSER_HEADERS, False, 16509) == []


def test_all_reasons_in_order() -> None:
    assert soft_bot_reasons(CHROME_DESKTOP, {}, True, 14061) == [
        "datacenter_ip:AS14061",
        "header:missing_sec_ch_ua",
        "header:missing_sec_fetch",
        "header:missing_accept_language",
    ]


def test_header_checks_only_for_browser_looking_uas() -> None:
    app = "App/1.0 (Android 14; Model=Pixel 8 Pro)"
    assert soft_bot_reasons(app, {}, False, None) == []
    assert soft_bot_reasons(app, {}, True, 16509) == ["datacenter_ip:AS16509"]


@pytest.mark.parametrize("ua", ["python-requests/2.31", "Mozilla/5.0", "", None])
def test_server_uas_are_skipped(ua: str | None) -> None:
    assert soft_bot_reasons(ua, {}, True, 16509) == []


def test_bot_properties() -> None:
    assert bot_properties([]) == {}
    assert bot_properties(["header:missing_sec_fetch"]) == {"__bot_reasons": "header:missing_sec_fetch"}
    # Two reasons of one category are still one category.
    assert bot_properties(["header:missing_sec_fetch", "header:missing_accept_language"]) == {
        "__bot_reasons": "header:missing_sec_fetch,header:missing_accept_language"
    }
    assert bot_properties(["datacenter_ip:AS16509", "header:missing_accept_language"]) == {
        "__bot_reasons": "datacenter_ip:AS16509,header:missing_accept_language",
        "__bot": "1",
    }
