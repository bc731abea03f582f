"""Stored properties: upstream's object.test.ts toDots oracle, JS number strings, our limits and strips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openpanel_lite.ingest.properties import (
    MAX_PROPERTIES,
    clean_properties,
    js_number,
    js_string,
    path_properties,
    to_dots,
)
from openpanel_lite.ingest.urls import parse_path

# --- upstream oracle -------------------------------------------------------------------------------


def test_oracle_to_dots() -> None:
    obj = {
        "a": 1,
        "b": 2,
        "array": ["1", "2", "3"],
        "arrayWithObjects": [{"a": 1}, {"b": 2}, {"c": 3}],
        "objectWithArrays": {"a": [1, 2, 3]},
        "null": None,
        "empty": "",
        "jsonString": '{"a": 1, "b": 2}',
    }
    assert to_dots(obj) == {
        "a": "1",
        "b": "2",
        "array.0": "1",
        "array.1": "2",
        "array.2": "3",
        "arrayWithObjects.0.a": "1",
        "arrayWithObjects.1.b": "2",
        "arrayWithObjects.2.c": "3",
        "objectWithArrays.a.0": "1",
        "objectWithArrays.a.1": "2",
        "objectWithArrays.a.2": "3",
        "jsonString.a": "1",
        "jsonString.b": "2",
    }


def test_oracle_malformed_json_strings_are_dropped() -> None:
    obj = {
        "validJson": '{"key":"value"}',
        "malformedJson": '{"key":"unterminated string',
        "startsWithBrace": "{not json at all",
        "startsWithBracket": "[also not json",
        "regularString": "normal string",
    }
    assert to_dots(obj) == {"validJson.key": "value", "regularString": "normal string"}


# --- to_dots details -------------------------------------------------------------------------------


def test_json_strings() -> None:
    assert to_dots(
        {
            "arr": '[1, {"x": true}]',
            "nested": json.dumps({"inner": json.dumps({"deep": "v"})}),
            "scalar": "123",
            "quoted": '"text"',
            "padded": '  {"k": "v"}  ',
            "emptyObj": "{}",
            "junk": "[object Object]",
        }
    ) == {
        "arr.0": "1",
        "arr.1.x": "true",
        "nested.inner.deep": "v",
        "scalar": "123",
        "quoted": '"text"',
        "padded.k": "v",
    }


def test_values_are_trimmed_and_blank_values_dropped() -> None:
    assert to_dots({"a": "  x  ", "b": "   ", "c": "\t\n", "d": [], "e": {}}) == {"a": "x"}


def test_booleans_numbers_and_other_types() -> None:
    assert to_dots({"t": True, "f": False, "i": 42, "big": 2**70, "f1": 1.0, "f2": 1.5, "neg": -0.0}) == {
        "t": "true",
        "f": "false",
        "i": "42",
        "big": "1180591620717411303424",
        "f1": "1",
        "f2": "1.5",
        "neg": "0",
    }
    assert to_dots({"tuple": (1, "a"), 5: "int key"}) == {"tuple.0": "1", "tuple.1": "a", "5": "int key"}


def test_lone_surrogates_removed_from_keys_and_values() -> None:
    assert to_dots({"k\ud800ey": "va\udfffl"}) == {"key": "val"}


def test_top_level_list_and_scalar() -> None:
    assert to_dots(["a", "b"]) == {"0": "a", "1": "b"}
    assert to_dots("not a container") == {}


def test_later_duplicate_key_wins() -> None:
    assert to_dots({"a.b": "1", "a": {"b": "2"}}) == {"a.b": "2"}


def _nested(levels: int) -> dict[str, object]:
    """{'k': {'k': … {'k': 'v'}}} with ``levels`` dicts in total."""
    value: object = "v"
    for _ in range(levels):
        value = {"k": value}
    assert isinstance(value, dict)
    return value


def test_depth_limit() -> None:
    assert to_dots(_nested(32)) == {".".join(["k"] * 32): "v"}
    assert to_dots(_nested(33)) == {}
    assert to_dots({"a": 1, "deep": _nested(40)}, max_depth=3) == {"a": "1"}
    # JSON inside a string counts toward the same depth.
    assert to_dots({"s": json.dumps(_nested(31))}) == {".".join(["s"] + ["k"] * 31): "v"}
    assert to_dots({"s": json.dumps(_nested(32))}) == {}


def test_absurdly_deep_json_string_is_dropped_not_raised() -> None:
    assert to_dots({"s": "[" * 5000 + "]" * 5000, "ok": "1"}) == {"ok": "1"}


def test_out_of_range_json_number_is_dropped() -> None:
    assert to_dots({"s": "[1e400]"}) == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (1.5, "1.5"),
        (-2.25, "-2.25"),
        (0.1 + 0.2, "0.30000000000000004"),
        (100.0, "100"),
        (1e16, "10000000000000000"),
        (1.2345678901234568e20, "123456789012345680000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-10, "-2.5e-10"),
        (5e-324, "5e-324"),
        (0.0, "0"),
        (-0.0, "0"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_js_number(value: float, text: str) -> None:
    assert js_number(value) == text


def test_js_string() -> None:
    assert [js_string(v) for v in (None, "", " a ", True, 7, 2.0)] == [None, None, "a", "true", "7", "2"]


# --- clean_properties ------------------------------------------------------------------------------


def test_reserved_inputs_are_removed() -> None:
    props: dict[str, object] = {
        "__path": "https://example.com/a",
        "__referrer": "https://google.com/",
        "__timestamp": "2026-01-01T00:00:00Z",
        "__revenue": 1299,
        "__ip": "203.0.113.9",
        "__deviceId": "abc",
        "__identify": {"email": "a@example.com", "firstName": "Ann"},
        "__os": "iOS",
        "__osVersion": "17",
        "__browser": "Safari",
        "__browserVersion": "17",
        "__device": "mobile",
        "__brand": "Apple",
        "__model": "iPhone",
        "__user_agent": "Mozilla/5.0",
        "__reqId": "r1",
        "__bot": "1",
        "__bot_reasons": "datacenter_ip:AS1",
        "__botanist": "x",
        "__bounce": "true",
        "__query": {"utm_source": "spoofed"},
        "__query.utm_medium": "spoofed",
        "__hash": "#spoofed",
        "__title": "Pricing",
        "__version": "1.2.0",
        "__buildNumber": 42,
        "__screen": "Home",
        "path": "/legacy",
        "plan": "pro",
    }
    assert clean_properties(props) == {
        "__title": "Pricing",
        "__version": "1.2.0",
        "__buildNumber": "42",
        "__screen": "Home",
        "path": "/legacy",
        "plan": "pro",
    }


def test_reserved_inputs_removed_when_sent_flat_or_as_json() -> None:
    props = {"__identify.email": "a@example.com", "__ip.v": "1", "__identify": '{"email": "x"}', "ok": "1"}
    assert clean_properties(props) == {"ok": "1"}


def test_none_and_empty() -> None:
    assert clean_properties(None) == {}
    assert clean_properties({}) == {}


def test_at_most_100_keys_in_order() -> None:
    props = {f"k{i:03d}": str(i) for i in range(150)}
    cleaned = clean_properties(props)
    assert list(cleaned) == [f"k{i:03d}" for i in range(MAX_PROPERTIES)]


def test_long_keys_dropped_long_values_cut_on_a_character_boundary() -> None:
    cleaned = clean_properties(
        {"k" * 64: "ok", "k" * 65: "dropped", "é" * 33: "dropped", "v": "é" * 1500, "": "x"}
    )
    assert cleaned == {"k" * 64: "ok", "v": "é" * 1024}
    assert clean_properties({"a": "x" * 3000})["a"] == "x" * 2048


def test_path_properties() -> None:
    parsed = parse_path('https://example.com/p?utm_source=google&utm_campaign=spring&empty=&f={"a":1}#plans')
    assert path_properties(parsed) == {
        "__query.utm_source": "google",
        "__query.utm_campaign": "spring",
        "__query.f.a": "1",
        "__hash": "#plans",
    }
    assert path_properties(parse_path("/no-query")) == {}


def test_path_keys_come_first_and_win() -> None:
    parsed = parse_path("/p?utm_source=google#h")
    props = {f"k{i:03d}": "v" for i in range(150)}
    cleaned = clean_properties(props, path=parsed)
    assert len(cleaned) == MAX_PROPERTIES
    assert list(cleaned)[:3] == ["__query.utm_source", "__hash", "k000"]
    assert cleaned["__query.utm_source"] == "google"
    assert clean_properties({"__query.utm_source": "spoofed"}, path=parsed) == {
        "__query.utm_source": "google",
        "__hash": "#h",
    }


def test_path_properties_capped_and_key_limited() -> None:
    query = "x" * 60 + "=dropped&" + "&".join(f"q{i}=1" for i in range(150))
    cleaned = path_properties(parse_path("/?" + query))
    assert list(cleaned) == [f"__query.q{i}" for i in range(MAX_PROPERTIES)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=50)
@given(st.dictionaries(st.text(max_size=70), json_values, max_size=30))
def test_clean_properties_always_within_limits(props: dict[str, object]) -> None:
    cleaned = clean_properties(props)
    assert len(cleaned) <= MAX_PROPERTIES
    for key, value in cleaned.items():
        assert 0 < len(key.encode()) <= 64
        assert 0 < len(value.encode()) <= 2048
        assert value == value.strip()
        assert not key.split(".")[0].startswith(("__ip", "__bot", "__path"))


# The one-pass path for flat ASCII properties must agree with the general path on every input it
# takes, and hand everything else over untouched.
flat_keys = st.sampled_from(
    [
        "__title",
        "__eventId",
        "__path",
        "__ip",
        "__bot",
        "__botty",
        "__query",
        "__hash",
        "plan",
        "a.b",
        "",
        "x" * 65,
    ]
) | st.text(max_size=70)
flat_values = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["  ", " padded ", '{"a":1}', "[1,2]", "{broken", "é", "x" * 2100, "y" * 2047 + " z"])
)


@settings(max_examples=300)
@given(
    st.dictionaries(flat_keys, flat_values, max_size=120),
    st.sampled_from(["/", "/a?x=1", "/a?x=1#h", "/p#frag"]),
)
def test_flat_fast_path_agrees_with_the_general_path(props: dict[str, object], path: str) -> None:
    from openpanel_lite.ingest.properties import _clean_flat, _clean_general

    parsed = parse_path(path)
    fast = path_properties(parsed)
    general = path_properties(parsed)
    _clean_general(props, general)
    before = dict(fast)
    if _clean_flat(props, fast):
        assert fast == general
        assert list(fast) == list(general)
    else:
        assert fast == before  # nothing half-added
    assert clean_properties(props, path=parsed) == general
