"""Referrer classification: upstream's parse-referrer.test.ts oracle (openpanel-facts §3.7) and ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openpanel_lite.ingest.referrer import (
    Referrer,
    ReferrerColumns,
    parse_referrer,
    referrer_from_query,
    resolve_referrer,
)
from openpanel_lite.ingest.referrer_data import REFERRER_PATHS, REFERRER_PATTERNS, REFERRERS

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "referrers"
TYPES = {"search", "social", "ai", "email", "tech", "paid", "commerce", "content"}


# --- upstream oracle -------------------------------------------------------------------------------


def test_oracle_empty() -> None:
    assert parse_referrer("") == Referrer("", "", "")


def test_oracle_known_url() -> None:
    assert parse_referrer("https://google.com/search?q=test") == Referrer(
        "Google", "search", "https://google.com/search?q=test"
    )


def test_oracle_www_prefix() -> None:
    assert parse_referrer("https://www.twitter.com/user") == Referrer(
        "Twitter", "social", "https://www.twitter.com/user"
    )
    assert parse_referrer("https://twitter.com/user") == Referrer(
        "Twitter", "social", "https://twitter.com/user"
    )


def test_oracle_unknown_and_invalid() -> None:
    assert parse_referrer("https://unknown-site.com") == Referrer("", "", "https://unknown-site.com")
    assert parse_referrer("not-a-url") == Referrer("", "", "not-a-url")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"utm_source": "google"}, Referrer("Google", "search", "")),
        ({"ref": "facebook"}, Referrer("Facebook", "social", "")),
        ({"utm_referrer": "twitter"}, Referrer("Twitter", "social", "")),
        ({"utm_source": "GoOgLe"}, Referrer("Google", "search", "")),
        ({"utm_source": "unknown-source"}, Referrer("unknown-source", "", "")),
        (
            {"utm_source": "google", "ref": "facebook", "utm_referrer": "twitter"},
            Referrer("Google", "search", ""),
        ),
        ({"ref": "facebook", "utm_referrer": "twitter"}, Referrer("Facebook", "social", "")),
    ],
)
def test_oracle_query(query: dict[str, str], expected: Referrer) -> None:
    assert referrer_from_query(query) == expected


def test_oracle_empty_query() -> None:
    assert referrer_from_query({}) is None


# --- host matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name", "type_"),
    [
        ("https://www.google.co.uk/", "Google", "search"),  # '{}' TLD pattern, compound ccTLD
        ("https://www.google.com.br/url?q=x", "Google", "search"),
        ("https://yandex.ru/search/?text=a", "Yandex", "search"),
        ("https://de.search.yahoo.com/", "Yahoo!", "search"),  # '{}' label pattern
        ("https://cn.bing.com/search?q=a", "Bing", "search"),
        ("https://duckduckgo.com/", "DuckDuckGo", "search"),
        ("https://m.facebook.com/", "Facebook", "social"),
        ("https://l.facebook.com/l.php?u=x", "Facebook", "social"),
        ("https://m.youtube.com/watch?v=1", "YouTube", "social"),  # 'm.' label dropped
        ("https://www2.bing.com/", "Bing", "search"),  # 'www2.' label dropped
        ("https://x.com/someone", "Twitter", "social"),
        ("https://t.co/abc", "Twitter", "social"),
        ("https://chatgpt.com/", "ChatGPT", "ai"),  # also in SearchEngines.yml: the AI list wins
        ("https://claude.ai/chat/1", "Claude", "ai"),
        ("https://www.perplexity.ai/search/x", "Perplexity", "ai"),  # www. form is 'search' in Matomo
        ("https://www.facebook.com/", "Facebook", "social"),  # so is Facebook: social ranks first
        ("https://gemini.google.com/app", "Gemini", "ai"),
        ("https://copilot.microsoft.com/", "Copilot", "ai"),
        ("https://poe.com/", "Poe", "ai"),  # curated
        ("android-app://com.google.android.gm/", "Gmail", "email"),
        ("https://mail.google.com/mail/u/0/", "Gmail", "email"),
        ("https://outlook.live.com/mail/0/", "Outlook", "email"),
        ("https://mail.yandex.ru/", "Yandex Mail", "email"),  # curated '{}' pattern
        ("https://github.com/org/repo", "GitHub", "tech"),  # Socials.yml says social: curated wins
        ("https://stackoverflow.com/q/1", "Stack Overflow", "tech"),
        ("https://news.ycombinator.com/item?id=1", "Hacker News", "tech"),
        ("https://www.notion.so/page", "Notion", "tech"),
        ("https://www.googleadservices.com/pagead/aclk", "Google Ads", "paid"),
        ("https://www.amazon.co.uk/dp/1", "Amazon", "commerce"),
        ("https://en.m.wikipedia.org/wiki/Analytics", "Wikipedia", "content"),
        ("https://medium.com/@a/b", "Medium", "content"),
        ("https://GOOGLE.COM./", "Google", "search"),  # case and the root dot do not matter
        ("www.twitter.com", "Twitter", "social"),  # no scheme: read as a host
        ("twitter.com/user", "Twitter", "social"),
    ],
)
def test_known_hosts(url: str, name: str, type_: str) -> None:
    found = parse_referrer(url)
    assert (found.name, found.type) == (name, type_)


@pytest.mark.parametrize(
    ("url", "name", "type_"),
    [
        ("https://x.com/i/grok?conversation=1", "Grok", "ai"),
        ("https://x.com/i/grokker", "Twitter", "social"),  # a prefix only matches whole segments
        ("https://www.bing.com/chat?q=1", "Copilot", "ai"),
        ("https://www.bing.com/images/search?q=cat", "Bing Images", "search"),
        ("https://www.bing.com/search?q=cat", "Bing", "search"),
        ("https://images.google.de/imgres?imgurl=x", "Google Images", "search"),
        ("https://www.google.de/imgres?imgurl=x", "Google Images", "search"),
        ("https://huggingface.co/chat/", "HuggingChat", "ai"),
        ("https://huggingface.co/models", "Hugging Face", "tech"),
    ],
)
def test_path_rules_beat_the_host(url: str, name: str, type_: str) -> None:
    found = parse_referrer(url)
    assert (found.name, found.type) == (name, type_)


@pytest.mark.parametrize(
    "url",
    [
        "https://docs.google.com/document/d/1",  # not 'google.{}': .com is no country code
        "https://example.com/",
        "about:blank",
        "null",
        "https://[::1/",
        "http://localhost:3000/",
    ],
)
def test_unknown_hosts(url: str) -> None:
    found = parse_referrer(url)
    assert (found.name, found.type) == ("", "")


def test_url_keeps_query_and_drops_one_trailing_slash() -> None:
    assert parse_referrer("https://example.com/a//").url == "https://example.com/a/"
    assert parse_referrer("  https://example.com/?q=1 ").url == "https://example.com/?q=1"


def test_url_is_truncated_at_2000_chars() -> None:
    found = parse_referrer("https://www.google.com/search?q=" + "a" * 5000)
    assert found == Referrer("Google", "search", ("https://www.google.com/search?q=" + "a" * 5000)[:2000])


# --- query sources ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"utm_source": "ChatGPT.com"}, Referrer("ChatGPT", "ai", "")),  # exact host
        ({"utm_source": "chatgpt"}, Referrer("ChatGPT", "ai", "")),  # host + '.com'
        ({"utm_source": "Hacker News"}, Referrer("Hacker News", "tech", "")),  # by name
        ({"utm_source": "google.de"}, Referrer("Google", "search", "")),  # as a hostname (ours)
        ({"utm_source": "Newsletter"}, Referrer("newsletter", "", "")),
        # Ours: an empty value does not hide the next key (upstream's ?? only skips absent keys).
        ({"utm_source": " ", "ref": "producthunt"}, Referrer("Product Hunt", "tech", "")),
        ({"utm_source": "", "ref": "", "utm_referrer": ""}, None),
        ({"utm_medium": "email"}, None),
    ],
)
def test_query_sources(query: dict[str, str], expected: Referrer | None) -> None:
    assert referrer_from_query(query) == expected


# --- stored columns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("referrer", "path", "query", "expected"),
    [
        (
            "https://www.google.com/",
            "https://shop.example/",
            {},
            ReferrerColumns("https://www.google.com", "Google", "search"),
        ),
        # Unknown referrer: its URL is the name.
        (
            "https://blog.other.example/post/",
            "https://shop.example/",
            {},
            ReferrerColumns("https://blog.other.example/post", "https://blog.other.example/post", ""),
        ),
        # UTM source wins for name and type; the referrer URL is still stored.
        (
            "https://www.google.com/",
            "https://shop.example/?utm_source=twitter",
            {"utm_source": "twitter"},
            ReferrerColumns("https://www.google.com", "Twitter", "social"),
        ),
        # Unknown UTM source: its name, and the referrer's type.
        (
            "https://www.google.com/",
            "https://shop.example/",
            {"utm_source": "spring-sale"},
            ReferrerColumns("https://www.google.com", "spring-sale", "search"),
        ),
        # Internal navigation (same host, or www vs bare) is no referrer; UTM still applies.
        ("https://shop.example/a", "https://shop.example/b", {}, ReferrerColumns("", "", "")),
        ("https://www.shop.example/a", "https://shop.example/b", {}, ReferrerColumns("", "", "")),
        (
            "https://shop.example/a",
            "https://SHOP.example/b",
            {"utm_source": "google"},
            ReferrerColumns("", "Google", "search"),
        ),
        # A subdomain is another site.
        (
            "https://blog.shop.example/",
            "https://shop.example/",
            {},
            ReferrerColumns("https://blog.shop.example", "https://blog.shop.example", ""),
        ),
        # Relative path or screen name: nothing to compare against.
        (
            "https://t.co/x",
            "/pricing",
            {},
            ReferrerColumns("https://t.co/x", "Twitter", "social"),
        ),
        # No hostname (about:blank, garbage): dropped, ours.
        ("about:blank", "https://shop.example/", {}, ReferrerColumns("", "", "")),
        (None, None, {}, ReferrerColumns("", "", "")),
        (None, None, {"ref": "Facebook"}, ReferrerColumns("", "Facebook", "social")),
    ],
)
def test_resolve_referrer(
    referrer: str | None, path: str | None, query: dict[str, str], expected: ReferrerColumns
) -> None:
    assert resolve_referrer(referrer, path, query) == expected


# --- generated table -------------------------------------------------------------------------------


def test_table_shape() -> None:
    assert len(REFERRERS) > 800
    assert all(key == key.lower() and "{}" not in key and "/" not in key for key in REFERRERS)
    assert not [key for key in REFERRERS if key.startswith("www.")]  # folded: the lookup retries without
    assert all("{}" in key for key in REFERRER_PATTERNS)
    entries = [*REFERRERS.values(), *REFERRER_PATTERNS.values()]
    entries += [(name, type_) for rules in REFERRER_PATHS.values() for _, name, type_ in rules]
    assert {type_ for _, type_ in entries} == TYPES
    assert all(name for name, _ in entries)
    assert list(REFERRERS) == sorted(REFERRERS)
    assert REFERRERS["google.com"] == ("Google", "search")
    assert REFERRER_PATTERNS["google.{}"] == ("Google", "search")
    assert REFERRERS["plus.google.com"] == ("Google+", "social")  # 'Google%2B' decoded


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason="shared referrer data not present")
def test_generated_table_is_up_to_date() -> None:
    pytest.importorskip("yaml")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "gen_referrers.py"), str(DATA_DIR), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
