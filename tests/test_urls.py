"""parse_path: upstream's parsePath cases (openpanel-facts §3.6) plus the edges new URL() handles."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openpanel_lite.ingest.urls import MAX_URL_LENGTH, ParsedPath, clean_url, hostname, parse_path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "https://example.com/pricing?utm_source=google&plan=pro#plans",
            ParsedPath("/pricing", "https://example.com", {"utm_source": "google", "plan": "pro"}, "#plans"),
        ),
        ("http://example.com", ParsedPath("/", "http://example.com", {}, "")),
        ("https://example.com/#", ParsedPath("/", "https://example.com", {}, "")),
        # Default port dropped, other ports kept, host lowercased, credentials never reach the origin.
        ("HTTPS://Example.COM:443/A", ParsedPath("/A", "https://example.com", {}, "")),
        ("http://user:pw@example.com:8080/p", ParsedPath("/p", "http://example.com:8080", {}, "")),
        ("http://[::1]:3000/x", ParsedPath("/x", "http://[::1]:3000", {}, "")),
        ("https://bücher.de/", ParsedPath("/", "https://xn--bcher-kva.de", {}, "")),
        # Relative paths are parsed against a dummy origin that is not reported.
        ("/docs/install?x=1+2&y=%C3%A9#top", ParsedPath("/docs/install", "", {"x": "1 2", "y": "é"}, "#top")),
        ("//cdn.example.com/a", ParsedPath("/a", "", {}, "")),
        # Screen names from the mobile SDKs are kept verbatim.
        ("HomeScreen", ParsedPath("HomeScreen", "", {}, "")),
        ("Settings / Profile", ParsedPath("Settings / Profile", "", {}, "")),
        ("", ParsedPath("", "", {}, "")),
    ],
)
def test_parse_path(value: str, expected: ParsedPath) -> None:
    assert parse_path(value) == expected


def test_none_is_empty() -> None:
    assert parse_path(None) == ParsedPath("", "", {}, "")


def test_repeated_query_key_keeps_last_value_and_blank_values_survive() -> None:
    assert parse_path("/?a=1&a=2&b=&c").query == {"a": "2", "b": "", "c": ""}


def test_semicolon_is_not_a_query_separator() -> None:
    assert parse_path("/?a=1;b=2").query == {"a": "1;b=2"}


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("/a/b/../c", "/a/c"),
        ("/a/./b/.", "/a/b/"),
        ("/a/b/..", "/a/"),
        ("/../../etc", "/etc"),
        ("/a/%2E%2e/b", "/b"),
        ("/a//b", "/a//b"),
        ('/a b/"q"/<x>/`{y}`', "/a%20b/%22q%22/%3Cx%3E/%60%7By%7D%60"),
        ("/café", "/caf%C3%A9"),
        ("/caf%C3%A9", "/caf%C3%A9"),  # already encoded: not encoded twice
        ("https://x.com\\a\\b?q=\\", "/a/b"),
    ],
)
def test_path_is_normalised_like_a_browser(value: str, path: str) -> None:
    assert parse_path(value).path == path


def test_hash_is_percent_encoded() -> None:
    assert parse_path("/p#a b<c>").hash == "#a%20b%3Cc%3E"


def test_tabs_newlines_and_edge_whitespace_are_removed() -> None:
    assert parse_path("  \t/a\n/b\r  ") == ParsedPath("/a/b", "", {}, "")


@pytest.mark.parametrize(
    "value",
    [
        "http://[::1/x",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://",
        "http:/",
        "ftp://x.com/a",
    ],
)
def test_malformed_or_non_http_urls_fall_back_to_the_raw_string(value: str) -> None:
    assert parse_path(value) == ParsedPath(value, "", {}, "")


def test_input_is_truncated_at_2000_chars() -> None:
    value = "https://example.com/" + "a" * 3000
    parsed = parse_path(value)
    assert parsed.path == "/" + "a" * (MAX_URL_LENGTH - len("https://example.com/"))
    assert parsed.origin == "https://example.com"


def test_encoded_path_is_cut_at_2000_chars_without_half_an_escape() -> None:
    # 'é' becomes '%C3%A9' (6 chars): 1999 = 1 + 6 * 333, so the cut lands inside an escape.
    parsed = parse_path("/" + "é" * 1000)
    assert parsed.path == "/" + "%C3%A9" * 333


def test_lone_surrogates_are_removed() -> None:
    assert parse_path("/a\ud800b?k=\udfffv") == ParsedPath("/ab", "", {"k": "v"}, "")


def test_query_dict_is_a_fresh_copy_each_call() -> None:
    first = parse_path("/x?a=1")
    first.query["a"] = "changed"
    assert parse_path("/x?a=1").query == {"a": "1"}


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://WWW.Example.com./x", "www.example.com"),
        ("//cdn.example.com/a", "cdn.example.com"),
        ("/relative", ""),
        ("Screen", ""),
        ("http://[::1", ""),
        ("", ""),
    ],
)
def test_hostname(url: str, host: str) -> None:
    assert hostname(url) == host


def test_clean_url() -> None:
    assert clean_url(" \thttps://a.com/\nb ") == "https://a.com/b"
    assert len(clean_url("x" * 5000)) == MAX_URL_LENGTH


@given(st.text(max_size=300))
def test_never_raises_and_stays_bounded(value: str) -> None:
    parsed = parse_path(value)
    assert len(parsed.path) <= MAX_URL_LENGTH
    assert parsed.origin == "" or parsed.origin.startswith(("http://", "https://"))
    assert parsed.hash == "" or parsed.hash.startswith("#")
