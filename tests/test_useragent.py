"""User-agent parsing: upstream's oracle cases (facts §3.9), server UAs, device rules, overrides, caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from openpanel_lite.ingest.useragent import (
    SERVER_USER_AGENT,
    UserAgentInfo,
    _guess_device_type,
    apply_overrides,
    parse_user_agent,
)

IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.5 Mobile/15E148 Safari/604.1"
)
WINDOWS_CHROME_91 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/91.0.4472.124 Safari/537.36"
)
PIXEL_APP = "App/1.0 (Android 14; Model=Pixel 8 Pro)"


def test_oracle_iphone_safari() -> None:
    assert parse_user_agent(IPHONE_SAFARI) == UserAgentInfo(
        os="iOS",
        os_version="16.5",
        browser="Mobile Safari",
        browser_version="16.5",
        device="mobile",
        brand="Apple",
        model="iPhone",
        is_server=False,
    )


def test_oracle_windows_chrome() -> None:
    assert parse_user_agent(WINDOWS_CHROME_91) == UserAgentInfo(
        os="Windows",
        os_version="10",
        browser="Chrome",
        browser_version="91.0.4472.124",
        device="desktop",
        brand="",
        model="",
        is_server=False,
    )


def test_oracle_app_style_model() -> None:
    # Upstream: Google / Pixel 8 Pro / Android 14 / mobile. uap-core also names the stock "Android"
    # browser from the OS token (docs/useragent-differences.md).
    assert parse_user_agent(PIXEL_APP) == UserAgentInfo(
        os="Android",
        os_version="14",
        browser="Android",
        browser_version="14",
        device="mobile",
        brand="Google",
        model="Pixel 8 Pro",
        is_server=False,
    )


@pytest.mark.parametrize(
    "ua",
    [
        "Go-http-client/1.0",
        "node-fetch/1.0",
        "unknown/1.0",
        "axios/1.6.0",
        "PostmanRuntime/7.36.0",
        "node",  # nothing detected at all
        "undici",
        "Mozilla/5.0",
        "",
        None,
    ],
)
def test_server_user_agents(ua: str | None) -> None:
    info = parse_user_agent(ua)
    assert info == UserAgentInfo(device="server", is_server=True)
    assert info.os == info.browser == info.brand == info.model == ""


def test_single_token_rule_needs_the_whole_string() -> None:
    # `Name/1.0` followed by anything else is not the bare-library shape.
    assert parse_user_agent("MyApp/3.2 (Android 13; Manufacturer=OnePlus; Model=CPH2449)") == UserAgentInfo(
        os="Android",
        os_version="13",
        browser="Android",
        browser_version="13",
        device="mobile",
        brand="OnePlus",
        model="CPH2449",
        is_server=False,
    )


def test_android_phone() -> None:
    ua = (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36"
    )
    assert parse_user_agent(ua) == UserAgentInfo(
        os="Android",
        os_version="14",
        browser="Chrome Mobile",
        browser_version="120.0.6099.144",
        device="mobile",
        brand="Google",
        model="Pixel 8 Pro",
        is_server=False,
    )


def test_android_tablet_from_reduced_ua() -> None:
    # Chrome's reduced UA: model frozen to "K", and no "Mobile" token on tablets.
    ua = (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    )
    assert parse_user_agent(ua) == UserAgentInfo(
        os="Android",
        os_version="10",
        browser="Chrome",
        browser_version="120.0.0.0",
        device="tablet",
        brand="",
        model="",
        is_server=False,
    )


def test_android_phone_from_reduced_ua() -> None:
    ua = (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36"
    )
    assert (parse_user_agent(ua).device, parse_user_agent(ua).model) == ("mobile", "")


def test_samsung_sm_t_tablet() -> None:
    ua = (
        "Mozilla/5.0 (Linux; Android 13; SM-T870) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    )
    assert parse_user_agent(ua) == UserAgentInfo(
        os="Android",
        os_version="13",
        browser="Chrome",
        browser_version="120.0.0.0",
        device="tablet",
        brand="Samsung",
        model="SM-T870",
        is_server=False,
    )


def test_samsung_phone() -> None:
    ua = (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
    )
    assert parse_user_agent(ua) == UserAgentInfo(
        os="Android",
        os_version="14",
        browser="Samsung Internet",
        browser_version="23.0",
        device="mobile",
        brand="Samsung",
        model="SM-S918B",
        is_server=False,
    )


def test_ipad_safari() -> None:
    ua = (
        "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.2 Mobile/15E148 Safari/604.1"
    )
    assert parse_user_agent(ua) == UserAgentInfo(
        os="iOS",
        os_version="17.2",
        browser="Mobile Safari",
        browser_version="17.2",
        device="tablet",
        brand="Apple",
        model="iPad",
        is_server=False,
    )


def test_ipados_app_version_fallback() -> None:
    # uap-core finds iOS without a version here; the iPadOS token supplies it, "_" read as ".".
    info = parse_user_agent("MyApp/1.0 (iPad; iPadOS 18_0)")
    assert (info.os, info.os_version, info.device, info.brand, info.model) == (
        "iOS",
        "18.0",
        "tablet",
        "Apple",
        "iPad",
    )


def test_ios_app_with_hardware_model() -> None:
    info = parse_user_agent("MyApp/1.0 (iPhone14,2; iOS 17.1; Scale/3.00)")
    assert (info.os, info.os_version, info.device, info.brand, info.model) == (
        "iOS",
        "17.1",
        "mobile",
        "Apple",
        "iPhone14,2",
    )


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
            UserAgentInfo("Mac OS X", "10.15", "Firefox", "121.0", "desktop", "Apple", "Mac", False),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.2 Safari/605.1.15",
            UserAgentInfo("Mac OS X", "10.15.7", "Safari", "17.2", "desktop", "Apple", "Mac", False),
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
            UserAgentInfo("Mac OS X", "10.15.7", "Edge", "120.0.2210.91", "desktop", "Apple", "Mac", False),
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
            UserAgentInfo("Ubuntu", "", "Firefox", "121.0", "desktop", "", "", False),
        ),
    ],
)
def test_desktop_browsers(ua: str, expected: UserAgentInfo) -> None:
    assert parse_user_agent(ua) == expected


@pytest.mark.parametrize(
    ("ua", "device", "brand", "model"),
    [
        # LG- model code: uap-core knows the vendor, getDevice's LG rule gives the form factor.
        (
            "Mozilla/5.0 (Linux; Android 12; LG-H870) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36",
            "mobile",
            "LG",
            "H870",
        ),
        # Galaxy Tab S9 (SM-X): a tablet although upstream only lists SM-T.
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
            "tablet",
            "Samsung",
            "SM-X710",
        ),
        # A named tablet line of a phone brand.
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel Tablet) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
            "tablet",
            "Google",
            "Pixel Tablet",
        ),
        # uap-core's Kindle family is a tablet.
        (
            "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/120.3.1 "
            "like Chrome/120.0.0.0 Safari/537.36",
            "tablet",
            "Amazon",
            "Kindle",
        ),
        # Firefox for Android spells the form factor out.
        ("Mozilla/5.0 (Android 14; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0", "tablet", "", ""),
        ("Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0", "mobile", "", ""),
        # uap-core names the vendor XiaoMi (its spelling, kept).
        (
            "Mozilla/5.0 (Linux; Android 11; Redmi Note 8 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36",
            "mobile",
            "XiaoMi",
            "Redmi Note 8 Pro",
        ),
        # An iOS networking-stack UA: iOS known, the device only as uap-core's "iOS-Device".
        ("MyApp/5 CFNetwork/1410.0.3 Darwin/22.6.0", "mobile", "Apple", ""),
    ],
)
def test_device_brand_model(ua: str, device: str, brand: str, model: str) -> None:
    info = parse_user_agent(ua)
    assert (info.device, info.brand, info.model) == (device, brand, model)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        ("Something (Linux; Android 13; Redmi Pad SE)", "tablet"),
        ("Something (Linux; Android 13; Redmi Note 12)", "mobile"),
        ("Something (Linux; Android 13; Galaxy S23)", "mobile"),
        ("Something (Linux; Android 13; Galaxy Tab S9)", "tablet"),
        ("Something (Android 13; HUAWEI P30)", "mobile"),
        ("Something (Android 13; HUAWEI MatePad 11)", "tablet"),
        ("Something (Android 13; moto g54)", "mobile"),
        ("Something (Android 13; RMX3630)", "mobile"),
        ("Something (Android 13; SM-A536B)", "mobile"),
        ("Something (Android 13; SM-T870)", "tablet"),
        ("Something (Android 13; SM-P610)", "tablet"),
        ("Something (LG-H870)", "mobile"),
        ("Opera/9.80 (J2ME/MIDP; Opera Mini/9.80)", "mobile"),
        ("Something (PlayBook; U; RIM Tablet OS 2.1.0)", "tablet"),
        ("Something (Linux; Android 13; QX100)", "mobile"),
        ("Something (X11; Linux x86_64)", "desktop"),
        ("Something (Windows NT 10.0; Win64; x64)", "desktop"),
    ],
)
def test_get_device_rules(ua: str, expected: str) -> None:
    assert _guess_device_type(ua) == expected


ALL_OVERRIDES = {
    "__os": "Plan 9",
    "__osVersion": "4",
    "__browser": "Acme",
    "__browserVersion": "1.2",
    "__device": "smarttv",
    "__brand": "Bell Labs",
    "__model": "Terminal",
}


def test_overrides_replace_every_field() -> None:
    info = apply_overrides(parse_user_agent(WINDOWS_CHROME_91), ALL_OVERRIDES)
    assert info == UserAgentInfo("Plan 9", "4", "Acme", "1.2", "smarttv", "Bell Labs", "Terminal", False)


def test_overrides_ignore_empty_and_non_strings() -> None:
    parsed = parse_user_agent(WINDOWS_CHROME_91)
    properties: dict[str, object] = {
        "__os": "",
        "__browser": 12,
        "__device": None,
        "__model": "Surface",
        "os": "x",
    }
    assert apply_overrides(parsed, properties) == UserAgentInfo(
        "Windows", "10", "Chrome", "91.0.4472.124", "desktop", "", "Surface", False
    )


def test_no_overrides_returns_the_same_object() -> None:
    parsed = parse_user_agent(WINDOWS_CHROME_91)
    assert apply_overrides(parsed, {"title": "x"}) is parsed


def test_server_ua_keeps_its_empty_record() -> None:
    assert apply_overrides(parse_user_agent("node-fetch/1.0"), ALL_OVERRIDES) is SERVER_USER_AGENT


def test_cache_returns_the_same_object() -> None:
    ua = IPHONE_SAFARI + " cache-probe"
    first = parse_user_agent(ua)
    hits = parse_user_agent.cache_info().hits
    assert parse_user_agent(ua) is first
    assert parse_user_agent.cache_info().hits == hits + 1


def _documented_differences() -> list[tuple[str, str, str]]:
    """(UA, field, our value) from the table in docs/useragent-differences.md."""
    doc = Path(__file__).resolve().parent.parent / "docs" / "useragent-differences.md"
    rows = []
    for line in doc.read_text().splitlines():
        if line.startswith("| `"):
            ua, field, _upstream, ours, _source = (cell.strip() for cell in line.strip("|").split(" | "))
            rows.append((ua.strip("`"), field, ours))
    return rows


def test_documented_differences_match_the_parser() -> None:
    rows = _documented_differences()
    assert len(rows) == 15
    for ua, field, ours in rows:
        assert getattr(parse_user_agent(ua), field) == ours, (ua, field)
