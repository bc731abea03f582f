"""Stored event properties: upstream's toDots flattening (openpanel-facts §1.10) plus our limits.

Limits from reliability.md §5: at most 100 keys, keys up to 64 bytes, values up to 2 KiB, depth 32.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import Decimal

import msgspec

from openpanel_lite.ingest.urls import ParsedPath

MAX_PROPERTIES = 100
MAX_KEY_BYTES = 64
MAX_VALUE_BYTES = 2048
MAX_DEPTH = 32

# Inputs that become event columns (path, origin, referrer*, created_at, revenue): not stored twice.
COLUMN_INPUTS = frozenset({"__path", "__referrer", "__timestamp", "__revenue"})
# Our deviation from upstream (openpanel-facts §10.5), which keeps these: `__ip` is a raw IP (never
# stored), `__deviceId` is already the device_id column, `__identify` copies profile PII (email, name)
# into every event, and `__user_agent` is the fingerprintable UA upstream stopped storing in 2025-11.
PRIVACY_INPUTS = frozenset({"__ip", "__deviceId", "__identify", "__user_agent", "__reqId"})
# Per-event UA overrides: they end up in the os/browser/device/brand/model columns.
UA_OVERRIDES = frozenset(
    {"__os", "__osVersion", "__browser", "__browserVersion", "__device", "__brand", "__model"}
)
# Keys only the server may set: __query/__hash come from __path, __bounce from session_end, and
# __bot* from bot detection (prefix match, see _is_stripped). A client must not spoof them.
SERVER_KEYS = frozenset({"__query", "__hash", "__bounce"})
SERVER_KEY_PREFIX = "__bot"
STRIPPED_KEYS = COLUMN_INPUTS | PRIVACY_INPUTS | UA_OVERRIDES | SERVER_KEYS

_SURROGATES = re.compile("[\ud800-\udfff]")
_JS_MAX_FIXED_DIGITS = 21  # Number.prototype.toString switches to exponent notation from 1e21


def to_dots(obj: object, *, max_depth: int = MAX_DEPTH) -> dict[str, str]:
    """Flatten like upstream's toDots: {"a": {"b": [1, true]}} -> {"a.b.0": "1", "a.b.1": "true"}.

    Strings holding a JSON object/array are parsed and flattened; other strings starting with '{'
    or '[' are malformed JSON and dropped. None and empty (after trimming) values are dropped,
    numbers and booleans become JS-style strings, lone surrogates are removed and values trimmed.
    Containers nested deeper than ``max_depth`` (the top object is level 1) are dropped.
    """
    out: dict[str, str] = {}
    _flatten(obj, "", 1, max_depth, out)
    return out


def clean_properties(props: Mapping[str, object] | None, *, path: ParsedPath | None = None) -> dict[str, str]:
    """The properties to store for an event: flattened, reserved inputs removed, within our limits.

    With ``path``, its ``__query.*`` / ``__hash`` keys (path_properties) are added first, so they
    win over client keys and are never crowded out of the 100-key cap. Keys over 64 bytes are
    dropped (cutting them could merge two keys); values are cut to 2 KiB on a character boundary.
    The pipeline must read the reserved inputs (``__path``, ``__ip`` …) from ``props`` first.
    """
    out = path_properties(path) if path is not None else {}
    if not props:
        return out
    if not _clean_flat(props, out):
        _clean_general(props, out)
    return out


def _clean_general(props: Mapping[str, object], out: dict[str, str]) -> None:
    kept = {k: v for k, v in props.items() if not _is_stripped(str(k))}
    for key, value in to_dots(kept).items():
        if len(out) >= MAX_PROPERTIES:
            break
        if key not in out and _storable_key(key) and not _is_stripped(key):
            out[key] = _cut_utf8(value, MAX_VALUE_BYTES)


def _clean_flat(props: Mapping[str, object], out: dict[str, str]) -> bool:
    """clean_properties for the usual shape, in one pass: ASCII keys without dots holding scalars.

    Adds to ``out`` exactly what the general path would and returns True; returns False, having
    added nothing, at the first key or value that needs the general path (nesting, JSON-looking or
    non-ASCII strings, dotted keys), which then starts over.
    """
    staged: list[tuple[str, str]] = []
    for key, value in props.items():
        if type(key) is not str or not key.isascii() or "." in key:
            return False
        kind = type(value)
        if kind is str:
            if not value.isascii():  # type: ignore[attr-defined]
                return False
            text = value.strip()  # type: ignore[attr-defined]
            if text and text[0] in "{[":
                return False
        elif value is None:
            continue
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int:
            text = str(value)
        elif kind is float:
            text = js_number(value)  # type: ignore[arg-type]
        else:
            return False
        if text and key not in STRIPPED_KEYS and not key.startswith(SERVER_KEY_PREFIX):
            staged.append((key, text))
    for key, text in staged:
        if len(out) >= MAX_PROPERTIES:
            break
        # ASCII: characters are bytes, so the byte limits are plain lengths.
        if key not in out and len(key) <= MAX_KEY_BYTES and key:
            out[key] = text if len(text) <= MAX_VALUE_BYTES else text[:MAX_VALUE_BYTES].rstrip()
    return True


def path_properties(parsed: ParsedPath) -> dict[str, str]:
    """The properties the worker derives from ``__path``: ``__query.<param>`` and ``__hash``.

    Flattened by the same rules as client properties (so ``?f={"a":1}`` gives ``__query.f.a``).
    """
    out: dict[str, str] = {}
    if not parsed.query and not parsed.hash:
        return out
    for key, value in to_dots({"__query": parsed.query, "__hash": parsed.hash}).items():
        if len(out) >= MAX_PROPERTIES:
            break
        if _storable_key(key):
            out[key] = _cut_utf8(value, MAX_VALUE_BYTES)
    return out


def js_string(value: object) -> str | None:
    """``String(value)`` as JavaScript writes it, trimmed; None for values toDots drops."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = js_number(value)
    else:
        text = _no_surrogates(str(value)).strip()
    return text or None


def _no_surrogates(text: str) -> str:
    # ASCII text holds no surrogates: skip the regex for the common case (this runs per key and value).
    return text if text.isascii() else _SURROGATES.sub("", text)


def js_number(value: float) -> str:
    """Number.prototype.toString: 1.0 -> '1', 1.5 -> '1.5', 1e21 -> '1e+21', 1e-7 -> '1e-7'."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"  # also -0, as in JS
    # repr gives the shortest digits that round-trip, which is what JS prints too.
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)  # finite: not 'n'/'N'/'F'
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    count = len(digits)
    point = count + exponent  # the value is 0.<digits> × 10^point
    if count <= point <= _JS_MAX_FIXED_DIGITS:
        text = digits + "0" * (point - count)
    elif 0 < point <= _JS_MAX_FIXED_DIGITS:
        text = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        text = "0." + "0" * -point + digits
    else:
        power = point - 1
        mantissa = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
        text = f"{mantissa}e{'+' if power > 0 else '-'}{abs(power)}"
    return "-" + text if value < 0 else text


def _flatten(value: object, prefix: str, depth: int, max_depth: int, out: dict[str, str]) -> None:
    if depth > max_depth:
        return
    if isinstance(value, Mapping):
        entries = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        entries = [(str(i), v) for i, v in enumerate(value)]
    else:
        return
    for raw_key, item in entries:
        key = prefix + _no_surrogates(raw_key)
        if isinstance(item, Mapping | list | tuple):
            _flatten(item, key + ".", depth + 1, max_depth, out)
            continue
        text = js_string(item)
        if text is None:
            continue
        if isinstance(item, str) and text[0] in "{[":
            parsed = _json_container(text)
            if parsed is not None:
                _flatten(parsed, key + ".", depth + 1, max_depth, out)
            continue  # malformed JSON-looking strings ('{not json', '[object Object') are dropped
        out[key] = text


def _json_container(text: str) -> object | None:
    """The parsed object/array, or None when ``text`` is not valid JSON (or nests absurdly deep)."""
    try:
        parsed: object = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # ValidationError (1e400) is a DecodeError
        return None
    return parsed if isinstance(parsed, dict | list) else None


def _is_stripped(key: str) -> bool:
    top = key.split(".", 1)[0]
    return top in STRIPPED_KEYS or top.startswith(SERVER_KEY_PREFIX)


def _storable_key(key: str) -> bool:
    return bool(key) and len(key.encode()) <= MAX_KEY_BYTES


def _cut_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    # 'ignore' drops a character cut in half; the cut may leave trailing whitespace to trim again.
    return data[:limit].decode("utf-8", "ignore").rstrip()
