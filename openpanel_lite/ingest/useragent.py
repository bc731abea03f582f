"""User-Agent → os, browser, device, brand, model, with OpenPanel's server-UA and device rules (facts §3.9).

uap-core (ua-parser, Rust backend) parses; its names are kept, see docs/useragent-differences.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final

import msgspec
from ua_parser import OS, Device, Domain, PartialResult, UserAgent, load_lazy_builtins
from ua_parser.regex import Resolver

DESKTOP: Final = "desktop"
MOBILE: Final = "mobile"
TABLET: Final = "tablet"
SERVER: Final = "server"

# Same bound as stack-notes §5 measured: ~89 % hits on a Zipf stream of real-looking UAs.
CACHE_SIZE: Final = 5000


class UserAgentInfo(msgspec.Struct, frozen=True):
    """What an event stores about its client. ``device`` is desktop/mobile/tablet/server unless overridden."""

    os: str = ""
    os_version: str = ""
    browser: str = ""
    browser_version: str = ""
    device: str = SERVER
    brand: str = ""
    model: str = ""
    is_server: bool = True


# Upstream's record for a missing or non-browser UA: every field empty, device 'server'.
SERVER_USER_AGENT: Final = UserAgentInfo()

# Event properties that replace a parsed field (facts §1.4), mapped to the field they replace.
OVERRIDE_PROPERTIES: Final[Mapping[str, str]] = {
    "__os": "os",
    "__osVersion": "os_version",
    "__browser": "browser",
    "__browserVersion": "browser_version",
    "__device": "device",
    "__brand": "brand",
    "__model": "model",
}

# A bare `Name/1.2.3` product token is an HTTP library or script, never a browser (facts §3.9).
_SINGLE_TOKEN_UA = re.compile(r"[^/]+/[\d.]+")

# uap-core's stand-ins for "vendor unknown" / "not a device"; they must not reach the brand column.
_PLACEHOLDER_BRANDS: Final = frozenset(
    {"", "Generic", "Generic_Android", "Generic_Android_Tablet", "Generic_Inettv", "Spider"}
)
# uap-core's stand-in models, and Chrome's frozen reduced-UA model "K" (it names no real device).
_PLACEHOLDER_MODELS: Final = frozenset({"", "Smartphone", "Feature Phone", "Tablet", "iOS-Device", "K"})

# App-style UAs (React Native, native SDKs) spell the device out: `(...; Model=Pixel 8; Manufacturer=Google)`.
_APP_MODEL = re.compile(r"\bModel=([^;)]+)")
_APP_MANUFACTURER = re.compile(r"\bManufacturer=([^;)]+)")

# iOS fallbacks for app UAs uap-core cannot version: `iOS 17.1`, `iPadOS 18_0`, `iPhone OS 16_5`.
_IOS_VERSION = re.compile(r"\b(?:iPadOS|iOS|iPhone OS|CPU OS)[ /]?(\d+(?:[._]\d+){0,3})\b")
_APPLE_DEVICE = re.compile(r"\b(?:iPhone|iPad|iPod)(?:\d+,\d+)?")

# getDevice (facts §3.9), checked in this order after uap-core's own device knowledge.
# NOTE: all of these run on the lower-cased UA without re.IGNORECASE: ~25x faster in Python's re.
# Named tablet lines come first so "Redmi Pad" or "Pixel Tablet" is not taken for the phone line.
_TABLET_MODELS = re.compile(
    r"\b(?:(?:redmi|xiaomi|mi|oppo|oneplus|realme|vivo|honor|huawei) ?pad|matepad|mediapad|galaxy ?tab"
    r"|pixel ?(?:tablet|c\b)|lenovo ?(?:tab|tb)|nokia ?t\d|moto ?tab|xperia ?tablet)"
)
_PHONE_MODELS = re.compile(
    r"\b(?:redmi|poco|mi ?\d{1,2}|galaxy ?(?:s|a|m|note|z)\d*|huawei|honor|oppo|cph\d{4}|vivo|iqoo"
    r"|oneplus|pixel|realme|rmx\d{4}|moto|motorola|nokia|xperia|nothing ?phone)\b"
)
# Samsung model codes: phones by series letter (upstream's set plus S = Galaxy S), tablets T/P/X.
_SAMSUNG_PHONE = re.compile(r"\bsm-[abdefgjmnrswz]\d+")
_SAMSUNG_TABLET = re.compile(r"\bsm-[ptx]\d+")
_LG_PHONE = re.compile(r"\blg-")
# Our own short list of handheld markers, standing in for upstream's detectmobilebrowsers regex.
_MOBILE_MARKERS = re.compile(
    r"mobi|phone|ipod|blackberry|bb10|opera mini|fennec|webos|symbian|series ?[46]0|midp|maemo|meego"
    r"|palm|netfront|up\.browser|windows ce|bada/"
)
_TABLET_MARKERS = re.compile(r"tablet|ipad|xoom|sch-i800|kindle|silk|playbook")

# Brand fallbacks when uap-core names no vendor and the UA has no `Manufacturer=`, in uap-core's
# spellings. One alternation behind one shared \b (several are ~10x slower), so the leftmost brand wins.
_BRANDS: Final = (
    ("xiaomi", "XiaoMi", r"(?:xiaomi|redmi|poco|mi ?\d{1,2})\b"),
    ("samsung", "Samsung", r"(?:galaxy|samsung)\b|sm-[a-z]\d"),
    ("google", "Google", r"pixel\b"),
    # The leading \b keeps "AppleWebKit" (present in nearly every UA) from counting as Apple.
    ("apple", "Apple", r"apple\b|iphone|ipad|ipod|macintosh"),
    ("huawei", "Huawei", r"huawei\b"),
    ("honor", "Honor", r"honor\b"),
    ("oneplus", "OnePlus", r"oneplus\b"),
    ("oppo", "Oppo", r"oppo\b"),
    ("vivo", "vivo", r"(?:vivo|iqoo)\b"),
    ("realme", "Realme", r"(?:realme|rmx\d{4})\b"),
    ("motorola", "Motorola", r"(?:moto|motorola)\b"),
    ("nokia", "Nokia", r"nokia\b"),
    ("sony", "Sony", r"(?:xperia|sony)\b"),
    ("nothing", "Nothing", r"nothing ?phone\b"),
    ("lg", "LG", r"lg[- ]"),
    ("amazon", "Amazon", r"(?:kindle|silk)\b"),
    ("lenovo", "Lenovo", r"lenovo\b"),
)
_BRAND_PATTERN = re.compile(
    r"\b(?:" + "|".join(f"(?P<{group}>{pattern})" for group, _, pattern in _BRANDS) + ")"
)
_BRAND_BY_GROUP: Final = {group: brand for group, brand, _ in _BRANDS}


@functools.cache
def _resolver() -> Resolver:
    # ~120 ms to build the Rust regex sets; done once, on first use.
    return Resolver(load_lazy_builtins())


def uap_resolve(ua: str, domains: Domain = Domain.ALL) -> PartialResult:
    """Raw uap-core result for ``ua`` (uncached); bots.py uses it for uap-core's 'Spider' device family."""
    return _resolver()(ua, domains)


def warm_up() -> None:
    """Build the uap-core matchers now rather than on the first request."""
    _resolver()


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_user_agent(ua: str | None) -> UserAgentInfo:
    """Parse a User-Agent header. Missing, bare `Name/1.0` or unrecognised UAs give SERVER_USER_AGENT."""
    if not ua or _SINGLE_TOKEN_UA.fullmatch(ua):
        return SERVER_USER_AGENT
    result = uap_resolve(ua)
    agent, os_, device = result.user_agent, result.os, result.device
    if device is not None and device.brand == "Spider":
        device = None  # uap-core's bot marker; bots are dropped before parsing anyway
    if agent is None and os_ is None and device is None:
        return SERVER_USER_AGENT

    os_name, os_version = _os_name_and_version(ua, os_)
    brand, model = _brand_and_model(ua, device)
    return UserAgentInfo(
        os=os_name,
        os_version=os_version,
        browser=agent.family if agent is not None else "",
        browser_version=_version(agent) if agent is not None else "",
        device=_known_device_type(ua, device) or _guess_device_type(ua),
        brand=brand,
        model=model,
        is_server=False,
    )


def apply_overrides(info: UserAgentInfo, properties: Mapping[str, object]) -> UserAgentInfo:
    """Replace parsed fields with the event's non-empty `__os`, `__browser`, `__device`... string properties.

    A server UA keeps its empty record, as upstream's does (facts §3.5: "UA fields will be empty/server").
    """
    if info.is_server:
        return info
    changes: dict[str, str] = {}
    for key, field in OVERRIDE_PROPERTIES.items():
        value = properties.get(key)
        if isinstance(value, str) and value:
            changes[field] = value
    return msgspec.structs.replace(info, **changes) if changes else info


def _version(part: UserAgent | OS) -> str:
    """`major.minor.patch.patch_minor`, stopping at the first missing component."""
    pieces: list[str] = []
    for piece in (part.major, part.minor, part.patch, part.patch_minor):
        if not piece:
            break
        pieces.append(piece)
    return ".".join(pieces)


def _os_name_and_version(ua: str, os_: OS | None) -> tuple[str, str]:
    name, version = (os_.family, _version(os_)) if os_ is not None else ("", "")
    if (not name or (name == "iOS" and not version)) and (match := _IOS_VERSION.search(ua)):
        return "iOS", match[1].replace("_", ".")
    return name, version


def _brand_and_model(ua: str, device: Device | None) -> tuple[str, str]:
    """Vendor and model: uap-core's when it knows the vendor, else the app-style fields, else regexes."""
    uap_brand = (device.brand or "") if device is not None else ""
    uap_model = (device.model or "") if device is not None else ""
    if uap_model in _PLACEHOLDER_MODELS:
        uap_model = ""
    if uap_brand not in _PLACEHOLDER_BRANDS:
        return uap_brand, uap_model

    app_model = _APP_MODEL.search(ua)
    app_manufacturer = _APP_MANUFACTURER.search(ua)
    brand = app_manufacturer[1].strip() if app_manufacturer else _brand_from_patterns(ua)
    if app_model:
        return brand, app_model[1].strip()
    if uap_model:
        # uap-core's generic Android rule takes whatever precedes "Build/" or ")", e.g. "23021RAAEG".
        return brand, uap_model
    apple = _APPLE_DEVICE.search(ua)
    return (brand or "Apple", apple[0]) if apple else (brand, "")


def _brand_from_patterns(ua: str) -> str:
    match = _BRAND_PATTERN.search(ua.lower())
    return _BRAND_BY_GROUP[match.lastgroup] if match is not None and match.lastgroup else ""


def _known_device_type(ua: str, device: Device | None) -> str | None:
    """The form factor uap-core's device family implies, standing in for ua-parser-js's `device.type`."""
    if device is not None:
        family, brand = device.family, device.brand or ""
        if family == "iPad" or brand == "Generic_Android_Tablet" or family == "Generic Tablet":
            return TABLET
        if brand == "Amazon" and family.startswith("Kindle"):
            return TABLET
        if family in ("iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone"):
            return MOBILE
        if family == "iOS-Device":
            return MOBILE  # a CFNetwork/Darwin app UA: iPhone or iPad unknown, and phones are the many
    # Apple's own tokens are unambiguous even when uap-core could not place the device.
    if "iPad" in ua:
        return TABLET
    if "iPhone" in ua or "iPod" in ua:
        return MOBILE
    return None


def _guess_device_type(ua: str) -> str:
    """Upstream's getDevice rules, in order; anything unmatched is a desktop."""
    ua = ua.lower()
    if _TABLET_MODELS.search(ua):
        return TABLET
    if _PHONE_MODELS.search(ua) or _SAMSUNG_PHONE.search(ua):
        return MOBILE
    if _SAMSUNG_TABLET.search(ua):
        return TABLET
    if _LG_PHONE.search(ua) or _MOBILE_MARKERS.search(ua):
        return MOBILE
    if _TABLET_MARKERS.search(ua):
        return TABLET
    if "android" in ua:
        return MOBILE
    return DESKTOP
