"""Jinja filters that turn report numbers into the short strings the dashboard shows.

Every filter is a plain function (tested on its own) and `register(env)` installs them all. Filters return
`str`, which autoescape escapes as usual; only `delta` returns `Markup`, built from numbers and fixed class
names, never from event data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment
from markupsafe import Markup

# U+2212: a real minus sign lines up with "+" in tabular figures; the spec shows "−4.0%".
MINUS = "\u2212"
_UNITS = ("", "k", "M", "B", "T")


def _fixed(value: float, places: int) -> str:
    """Round half up, as people do (7.25 -> '7.3'); f-strings round half to even on the binary value."""
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _trim(text: str) -> str:
    """'12.0' -> '12', '12.5' -> '12.5' (a trailing '.0' is noise in compact numbers)."""
    return text[:-2] if text.endswith(".0") else text


def compact_number(value: float | None) -> str:
    """1234 -> '1.2k', 3_400_000 -> '3.4M', 999 -> '999', 2.5 -> '2.5'; None -> '–'."""
    if value is None or not math.isfinite(value):
        return "–"
    number = abs(float(value))
    sign = "-" if value < 0 and round(number, 1) > 0 else ""
    if round(number, 1) < 1000:
        # Averages (pages per session) keep one decimal; counts stay whole.
        return sign + _trim(_fixed(number, 1))
    unit = 0
    while number >= 1000 and unit < len(_UNITS) - 1:
        number /= 1000
        unit += 1
    text = _fixed(number, 1) if number < 100 else _fixed(number, 0)
    # Rounding can reach the next unit (999_950 -> '1000.0k'): move up so it reads '1M'.
    if float(text) >= 1000 and unit < len(_UNITS) - 1:
        number = float(text) / 1000
        unit += 1
        text = _fixed(number, 1)
    return sign + _trim(text) + _UNITS[unit]


def number(value: float | None) -> str:
    """Whole number with thousands separators: 1234567 -> '1,234,567'; None -> '–'."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{round(value):,}"


def duration(seconds: float | None) -> str:
    """Seconds as the two largest units: 45 -> '45s', 192 -> '3m 12s', 3720 -> '1h 2m', 90000 -> '1d 1h'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    total = max(0, round(seconds))
    parts: list[str] = []
    for size, suffix in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        amount, total = divmod(total, size)
        if amount or parts:
            parts.append(f"{amount}{suffix}")
        if len(parts) == 2:
            break
    # Zero parts after the first say nothing ('3m 0s' -> '3m'); an empty list means 0 seconds.
    shown = [parts[0], *[p for p in parts[1:] if not p.startswith("0")]] if parts else ["0s"]
    return " ".join(shown)


def percent(value: float | None) -> str:
    """A value already in percent (OpenPanel's bounce_rate is 0-100): 12.345 -> '12.3%'; None -> '–'."""
    if value is None or not math.isfinite(value):
        return "–"
    text = _fixed(value, 1)
    return ("0.0" if text == "-0.0" else text) + "%"


def money(cents: float | None) -> str:
    """Integer cents as a decimal amount: 1999 -> '19.99', 123456 -> '1,234.56'; None -> '–'."""
    if cents is None or not math.isfinite(cents):
        return "–"
    whole = round(cents)
    sign = "-" if whole < 0 else ""
    units, rest = divmod(abs(whole), 100)
    return f"{sign}{units:,}.{rest:02d}"


def delta_percent(current: float | None, previous: float | None) -> float | None:
    """Change from previous to current in percent; None when there is no base to compare with."""
    if current is None or previous is None or previous == 0:
        return None
    if not (math.isfinite(current) and math.isfinite(previous)):
        return None
    return (current - previous) / abs(previous) * 100


def delta(current: float | None, previous: float | None, inverse: bool = False) -> Markup:
    """`<span class="op-delta op-delta--up op-delta--good">+12.3%</span>` for the change since `previous`.

    Direction (up/down/flat/none) is the sign of the change; good/bad says whether that is welcome, which
    flips with `inverse=True` (a rising bounce rate is bad). No base (previous is 0 or missing) gives an
    empty `op-delta--none` span so cards keep their height.
    """
    change = delta_percent(current, previous)
    if change is None:
        return Markup('<span class="op-delta op-delta--none"></span>')
    text = _fixed(abs(change), 1)
    if text == "0.0":
        return Markup('<span class="op-delta op-delta--flat">0.0%</span>')
    up = change > 0
    good = up != inverse
    classes = f"op-delta op-delta--{'up' if up else 'down'} op-delta--{'good' if good else 'bad'}"
    return Markup('<span class="{}">{}{}%</span>').format(classes, "+" if up else MINUS, text)


def http_url(url: str | None) -> str | None:
    """The URL itself when it is absolute http(s) with a host, else None: only these may become a link.

    Referrers and link_out hrefs come from tracked events, so `javascript:`, `data:` and odd spellings
    (' javascript:', 'JaVaScRiPt:', '//evil') are all refused here, before any template builds an href.
    """
    if not url or url != url.strip() or any(ord(ch) < 0x20 or ch == "\x7f" for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def local_url(url: str | None) -> str:
    """A same-site URL ('/p/1?f=x' or '?f=x') unchanged; anything else becomes '#'.

    Filter links are built by the page builder, but they carry event values, so the template checks
    that they cannot turn into another origin or a script URL.
    """
    if not url or any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in url):
        return "#"
    if url.startswith("?") or (url.startswith("/") and not url.startswith("//")):
        return url
    return "#"


FILTERS: dict[str, Callable[..., Any]] = {
    "compact_number": compact_number,
    "number": number,
    "duration": duration,
    "percent": percent,
    "money": money,
    "delta": delta,
    "http_url": http_url,
    "local_url": local_url,
}


def register(env: Environment) -> None:
    """Install the dashboard filters on a Jinja environment (the page builder calls this once)."""
    env.filters.update(FILTERS)
