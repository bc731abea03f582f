"""Property-based tests for the ingest validator and every enrichment step (openpanel-facts §1.2–§1.14,
§3.1–§3.10; reliability.md §5 limits).

Each test states an invariant that holds for *any* input a client can send: the validator only ever
answers with ValidationFailed / Unsupported, stored properties stay within the limits, the URL,
referrer, user-agent, bot, identity, client-IP and Origin functions never raise and keep their
documented shapes. Bugs it found are kept as regression tests.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import re
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, assume, example, given, settings
from hypothesis import strategies as st

from openpanel_lite.ingest.auth import origin_allowed
from openpanel_lite.ingest.blocklist import (
    BLOCKED_EVENT_NAME_MESSAGE,
    MAX_EVENT_NAME_LENGTH,
    is_blocked_event_name,
)
from openpanel_lite.ingest.bots import (
    BOT_TYPE_BY_TAG,
    DATACENTER_REASON,
    DEFAULT_BOT_TYPE,
    MISSING_ACCEPT_LANGUAGE,
    MISSING_SEC_CH_UA,
    MISSING_SEC_FETCH,
    detect_bot,
    soft_bot_reasons,
)
from openpanel_lite.ingest.client_ip import TrustedProxies, resolve_client_ip
from openpanel_lite.ingest.identity import (
    MAX_DEVICE_ID_OVERRIDE_LEN,
    device_id,
    sanitize_device_id_override,
    session_bucket,
    session_id,
)
from openpanel_lite.ingest.properties import (
    MAX_DEPTH,
    MAX_KEY_BYTES,
    MAX_PROPERTIES,
    MAX_VALUE_BYTES,
    clean_properties,
    path_properties,
    to_dots,
)
from openpanel_lite.ingest.referrer import (
    NO_REFERRER,
    parse_referrer,
    referrer_from_query,
    resolve_referrer,
)
from openpanel_lite.ingest.referrer_data import REFERRER_PATHS, REFERRER_PATTERNS, REFERRERS
from openpanel_lite.ingest.schemas import (
    PAYLOAD_TYPES,
    AssignGroupPayload,
    Envelope,
    GroupPayload,
    IdentifyPayload,
    IncrementPayload,
    TrackPayload,
    Unsupported,
    ValidationFailed,
    parse_envelope,
)
from openpanel_lite.ingest.urls import MAX_URL_LENGTH, parse_path
from openpanel_lite.ingest.useragent import (
    OVERRIDE_PROPERTIES,
    SERVER_USER_AGENT,
    UserAgentInfo,
    apply_overrides,
    parse_user_agent,
)

# 2 shared cores: every test stays small, and none has a per-example deadline.
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = settings(max_examples=15, deadline=None)
# Regression tests for bugs these properties found: few examples, no shrinking, no example database.
REGRESSION = settings(max_examples=10, deadline=None, phases=[Phase.generate], database=None)

# --- shared strategies -------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
# Any code point, lone surrogates included (a JSON string may carry "\ud800" escapes in other decoders).
ANY_CHAR = st.one_of(
    st.characters(),
    st.characters(categories=["Cs"]),
    st.sampled_from(list(" \t\n\r\x00\x0b./:?#&=%[]{}@\\\"',;")),
)
ANY_TEXT = st.text(ANY_CHAR, max_size=20)
# Header values and UAs come from latin-1 decoded bytes: they never hold lone surrogates.
HEADER_CHAR = st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(list(" ;/()._-:,+")))
HEADER_TEXT = st.text(HEADER_CHAR, max_size=80).filter(lambda t: not _SURROGATE.search(t))

# Integers msgspec can still decode (it refuses more than 4300 digits, like int()).
HUGE_INT = st.builds(lambda digits, sign: sign * 10**digits, st.integers(0, 4299), st.sampled_from([1, -1]))
# Integers a float can hold: the validator's number checks go through float
# (see test_increment_value_beyond_float_range).
FLOAT_RANGE_INT = st.integers(min_value=-(10**300), max_value=10**300)

# DNS labels and domains (never starting with 'www.', which clean_domain strips).
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
domains = st.builds(
    lambda labels, tld: ".".join([*labels, tld]),
    st.lists(label, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
).filter(lambda d: not d.startswith("www."))
schemes = st.sampled_from(["https://", "http://"])


def _json_values(ints: st.SearchStrategy[int], max_leaves: int = 8) -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        ints,
        st.floats(allow_nan=False, allow_infinity=False),
        ANY_TEXT,
        st.sampled_from(["", " ", "{", "[", "{not json", "[object Object]", '{"a": {"b": [1, 2]}}', "[1,2]"]),
    )
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
        max_leaves=max_leaves,
    )


JSON = _json_values(HUGE_INT)
JSON_FLOAT_INTS = _json_values(FLOAT_RANGE_INT)

PAYLOAD_FIELDS = (
    "name",
    "properties",
    "profileId",
    "groups",
    "firstName",
    "lastName",
    "email",
    "avatar",
    "property",
    "value",
    "id",
    "type",
    "groupIds",
    "alias",
)


def _js_length(text: str) -> int:
    """String.prototype.length: UTF-16 code units (a lone surrogate is one, an astral character two)."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def _top(key: str) -> str:
    return key.split(".", 1)[0]


# --- parse_envelope: total over arbitrary JSON -------------------------------------------------

payload_dicts = st.dictionaries(st.sampled_from(PAYLOAD_FIELDS) | ANY_TEXT, JSON, max_size=6)
bodies = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(PAYLOAD_TYPES) | JSON,
            "payload": payload_dicts | JSON,
        },
        optional={"clientId": JSON, "clientSecret": JSON},
    ),
)


def _beyond_float(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**308


@FAST
@given(bodies)
def test_parse_envelope_only_raises_validation_errors(body: Any) -> None:
    # Covered by test_increment_value_beyond_float_range below (was an OverflowError, a 500).
    assume(
        not (
            isinstance(body, dict)
            and body.get("type") in ("increment", "decrement")
            and isinstance(body.get("payload"), dict)
            and _beyond_float(body["payload"].get("value"))
        )
    )
    try:
        env = parse_envelope(body)
    except ValidationFailed as e:
        assert str(e).startswith(("body/", "body "))
        assert e.path in ("", "type") or e.path.startswith("payload")
        return
    except Unsupported:
        assert isinstance(body, dict) and body["type"] in ("alias", "replay")
        assert isinstance(body["payload"], dict)
        return
    assert isinstance(env, Envelope)
    assert isinstance(body, dict) and env.type == body["type"]
    client_id = body.get("clientId")
    assert env.client_id == (client_id if isinstance(client_id, str) else None)
    expected_payload = {
        "track": TrackPayload,
        "identify": IdentifyPayload,
        "increment": IncrementPayload,
        "decrement": IncrementPayload,
        "group": GroupPayload,
        "assign_group": AssignGroupPayload,
    }[env.type]
    assert isinstance(env.payload, expected_payload)
    raw = body["payload"]
    p = env.payload
    if isinstance(p, TrackPayload):
        assert p.name == raw["name"] and p.name
        assert p.properties == (raw.get("properties") or {})
        assert p.groups == tuple(raw.get("groups") or ())
    elif isinstance(p, IncrementPayload):
        assert math.isfinite(p.value) and p.value > 0
    elif isinstance(p, AssignGroupPayload):
        assert p.group_ids == tuple(raw["groupIds"]) and all(isinstance(g, str) for g in p.group_ids)
    elif isinstance(p, GroupPayload):
        assert all(isinstance(v, str) and v for v in (p.id, p.type, p.name))


@FAST
@given(
    st.sampled_from(PAYLOAD_TYPES),
    st.dictionaries(st.sampled_from(PAYLOAD_FIELDS), JSON_FLOAT_INTS, max_size=5),
)
def test_parse_envelope_accepts_what_the_json_decoder_produces(kind: str, payload: dict[str, Any]) -> None:
    """The same body once more, as bytes through msgspec (what /track does): the verdict is the same."""
    body = {"type": kind, "payload": payload}
    try:
        decoded = msgspec.json.decode(msgspec.json.encode(body))
    except (msgspec.DecodeError, UnicodeEncodeError):
        return  # lone surrogates cannot be written as UTF-8 JSON: such a body never reaches us
    outcomes = []
    for candidate in (body, decoded):
        try:
            outcomes.append(parse_envelope(candidate))
        except (ValidationFailed, Unsupported) as e:
            outcomes.append(str(e))
    assert outcomes[0] == outcomes[1]


@REGRESSION
@given(st.sampled_from(["increment", "decrement"]), st.integers(309, 4299), st.sampled_from([1, -1]))
def test_increment_value_beyond_float_range(kind: str, digits: int, sign: int) -> None:
    raw = b'{"type":"%s","payload":{"profileId":"p1","property":"visits","value":%s1%s}}' % (
        kind.encode(),
        b"-" if sign < 0 else b"",
        b"0" * digits,
    )
    body = msgspec.json.decode(raw)  # reachable: msgspec decodes such integers (up to 4300 digits)
    try:
        env = parse_envelope(body)
    except ValidationFailed as e:
        assert str(e).startswith("body/payload/value ")
        return
    assert isinstance(env.payload, IncrementPayload)
    assert sign > 0 and math.isfinite(env.payload.value) and env.payload.value > 0


VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "track": {"name": "click", "properties": {"a": 1}, "profileId": "u1", "groups": ["g"]},
    "identify": {
        "profileId": "u1",
        "firstName": "Ada",
        "lastName": "L",
        "email": "ada@example.com",
        "avatar": "https://example.com/a.png",
        "properties": {"plan": "pro"},
    },
    "increment": {"profileId": "u1", "property": "visits", "value": 2},
    "decrement": {"profileId": "u1", "property": "visits", "value": 2},
    "group": {"id": "g1", "type": "company", "name": "Acme", "properties": {"seats": 3}},
    "assign_group": {"groupIds": ["g1", "g2"], "profileId": "u1"},
}
# Payload field -> attribute of the parsed payload.
FIELD_ATTRS = {
    "name": "name",
    "properties": "properties",
    "profileId": "profile_id",
    "groups": "groups",
    "firstName": "first_name",
    "lastName": "last_name",
    "email": "email",
    "avatar": "avatar",
    "property": "property",
    "value": "value",
    "id": "id",
    "type": "type",
    "groupIds": "group_ids",
}
_INVALID = object()


def _spec_value(kind: str, field: str, value: Any) -> Any:
    """What openpanel-facts §1.6 says the field becomes, or _INVALID when it must be a 400."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if field in ("name", "property", "id", "type"):  # required, string ≥ 1
        if not isinstance(value, str) or not value:
            return _INVALID
        reserved = value in ("session_start", "session_end")
        if kind == "track" and field == "name" and (reserved or is_blocked_event_name(value)):
            return _INVALID
        return value
    if field in ("firstName", "lastName"):
        return value if value is None or isinstance(value, str) else _INVALID
    if field == "properties":
        return value or {} if value is None or isinstance(value, dict) else _INVALID
    if field == "profileId":
        if isinstance(value, str):
            return value or _INVALID
        if is_number:
            return (
                str(value)
                if isinstance(value, int)
                else str(int(value))
                if value.is_integer()
                else repr(value)
            )
        return _INVALID  # None is only fine where profileId is optional: see the caller
    if field in ("groups", "groupIds"):
        if value is None and field == "groups":
            return ()
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return _INVALID
    if field == "value":
        if value is None:
            return 1.0
        return float(value) if is_number and value > 0 else _INVALID
    raise AssertionError(field)


@FAST
@given(
    st.sampled_from(sorted(VALID_PAYLOADS)).flatmap(
        lambda kind: st.tuples(st.just(kind), st.sampled_from(sorted(VALID_PAYLOADS[kind])))
    ),
    JSON_FLOAT_INTS | st.text(max_size=5) | st.lists(st.text(max_size=3), max_size=3),
)
def test_each_payload_field_is_validated(kind_field: tuple[str, str], value: Any) -> None:
    """One field of a valid payload replaced by any JSON value: accepted exactly when §1.6 allows it,
    converted as specified, and otherwise a 400 naming that field."""
    kind, field = kind_field
    payload = {**VALID_PAYLOADS[kind], field: value}
    checked = field not in ("email", "avatar")  # format checks: only the error path is asserted
    expected = _spec_value(kind, field, value) if checked else None
    if field == "profileId" and value is None and kind in ("track", "assign_group"):
        expected = None  # optional there
    try:
        env = parse_envelope({"type": kind, "payload": payload})
    except ValidationFailed as e:
        assert e.path == f"payload/{field}" or e.path.startswith(f"payload/{field}/"), str(e)
        assert not checked or expected is _INVALID
        return
    got = getattr(env.payload, FIELD_ATTRS[field])
    if checked:
        assert expected is not _INVALID and got == expected
    else:
        assert value is None or isinstance(value, str)
        assert got == (value or None)


@FAST
@given(JSON | st.floats(allow_nan=False, allow_infinity=False).map(float.__floor__).map(float))
@example(3.0)
@example(-0.0)
def test_parse_envelope_profile_id_any_json(profile_id: Any) -> None:
    """profileId: a string of ≥1 char or a finite number, kept as text; anything else is a 400."""
    try:
        env = parse_envelope({"type": "identify", "payload": {"profileId": profile_id}})
    except ValidationFailed as e:
        assert str(e).startswith("body/payload/profileId ")
        assert profile_id is None or profile_id == "" or isinstance(profile_id, bool | list | dict)
        return
    assert isinstance(env.payload, IdentifyPayload)
    if isinstance(profile_id, str):
        assert env.payload.profile_id == profile_id
    elif isinstance(profile_id, int):
        assert env.payload.profile_id == str(profile_id)
    else:
        assert isinstance(profile_id, float) and float(env.payload.profile_id) == profile_id
        if profile_id.is_integer() and abs(profile_id) < 1e21:
            assert env.payload.profile_id == str(int(profile_id))  # JS String(3.0) is "3"


# --- parse_envelope: valid payloads round-trip --------------------------------------------------

EVENT_NAME_CHAR = st.characters(exclude_characters="\n\r")
event_names = st.text(EVENT_NAME_CHAR, min_size=1, max_size=40).filter(
    lambda n: n not in ("session_start", "session_end") and not is_blocked_event_name(n)
)
profile_ids = st.text(min_size=1, max_size=30) | st.integers() | HUGE_INT
properties_dicts = st.dictionaries(ANY_TEXT, JSON, max_size=6)
string_lists = st.lists(ANY_TEXT, max_size=5)


def _expected_profile_id(value: str | int) -> str:
    return value if isinstance(value, str) else str(value)


@FAST
@given(
    name=event_names,
    props=properties_dicts,
    profile_id=st.none() | profile_ids,
    groups=st.none() | string_lists,
    client_id=st.none() | st.text(max_size=40),
    client_secret=st.none() | st.text(max_size=40),
)
def test_valid_track_round_trips(
    name: str,
    props: dict[str, Any],
    profile_id: str | int | None,
    groups: list[str] | None,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    assume(not (name == "revenue" and "__revenue" in props))
    payload: dict[str, Any] = {"name": name, "properties": props, "profileId": profile_id, "groups": groups}
    env = parse_envelope(
        {"type": "track", "payload": payload, "clientId": client_id, "clientSecret": client_secret}
    )
    assert env.type == "track" and isinstance(env.payload, TrackPayload)
    assert env.payload.name == name
    assert env.payload.properties == props
    assert env.payload.profile_id == (None if profile_id is None else _expected_profile_id(profile_id))
    assert env.payload.groups == tuple(groups or ())
    assert (env.client_id, env.client_secret) == (client_id, client_secret)


@FAST
@given(revenue=JSON_FLOAT_INTS)
def test_revenue_must_be_a_non_negative_integer(revenue: Any) -> None:
    body = {"type": "track", "payload": {"name": "revenue", "properties": {"__revenue": revenue}}}
    valid = isinstance(revenue, int) and not isinstance(revenue, bool) and revenue >= 0
    if valid:
        env = parse_envelope(body)
        assert isinstance(env.payload, TrackPayload) and env.payload.properties["__revenue"] == revenue
    else:
        with pytest.raises(ValidationFailed, match=r"^body/payload/properties/__revenue __revenue must be"):
            parse_envelope(body)


emails = st.from_regex(
    r"[A-Za-z0-9_%+'-][A-Za-z0-9._%+'-]{0,12}@[A-Za-z0-9-]{1,12}(\.[A-Za-z0-9-]{1,6})?\.[A-Za-z]{2,6}",
    fullmatch=True,
)
avatars = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "ftp"]),
    st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.text(st.characters(exclude_categories=["Z", "Cc", "Cs"]), max_size=20),
)


@FAST
@given(
    profile_id=profile_ids,
    first=st.none() | st.text(max_size=20),
    last=st.none() | st.text(max_size=20),
    email=st.none() | st.just("") | emails,
    avatar=st.none() | st.just("") | avatars,
    props=st.none() | properties_dicts,
)
def test_valid_identify_round_trips(
    profile_id: str | int,
    first: str | None,
    last: str | None,
    email: str | None,
    avatar: str | None,
    props: dict[str, Any] | None,
) -> None:
    payload = {
        "profileId": profile_id,
        "firstName": first,
        "lastName": last,
        "email": email,
        "avatar": avatar,
        "properties": props,
    }
    env = parse_envelope({"type": "identify", "payload": payload})
    p = env.payload
    assert isinstance(p, IdentifyPayload)
    assert p.profile_id == _expected_profile_id(profile_id)
    assert (p.first_name, p.last_name) == (first, last)
    assert (p.email, p.avatar) == (email or None, avatar or None)
    assert p.properties == (props or {})


@FAST
@given(
    kind=st.sampled_from(["increment", "decrement"]),
    profile_id=profile_ids,
    prop=st.text(min_size=1, max_size=30),
    value=st.none()
    | st.integers(min_value=1, max_value=10**300)
    | st.floats(min_value=0, exclude_min=True, allow_infinity=False),
)
def test_valid_increment_round_trips(
    kind: str, profile_id: str | int, prop: str, value: int | float | None
) -> None:
    payload: dict[str, Any] = {"profileId": profile_id, "property": prop}
    if value is not None:
        payload["value"] = value
    env = parse_envelope({"type": kind, "payload": payload})
    p = env.payload
    assert isinstance(p, IncrementPayload)
    assert p.profile_id == _expected_profile_id(profile_id) and p.property == prop
    assert p.value == (1.0 if value is None else float(value))
    assert p.direction == (1 if kind == "increment" else -1)


@FAST
@given(value=JSON_FLOAT_INTS)
def test_increment_value_must_be_a_positive_finite_number(value: Any) -> None:
    body = {"type": "increment", "payload": {"profileId": "p", "property": "n", "value": value}}
    positive = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if value is None or positive:
        p = parse_envelope(body).payload
        assert isinstance(p, IncrementPayload) and p.value > 0 and math.isfinite(p.value)
    else:
        with pytest.raises(ValidationFailed, match=r"^body/payload/value "):
            parse_envelope(body)


@FAST
@given(
    ids=st.tuples(*[st.text(min_size=1, max_size=20)] * 3),
    props=st.none() | properties_dicts,
    group_ids=string_lists,
    profile_id=st.none() | profile_ids,
)
def test_valid_group_and_assign_group_round_trip(
    ids: tuple[str, str, str],
    props: dict[str, Any] | None,
    group_ids: list[str],
    profile_id: str | int | None,
) -> None:
    gid, gtype, gname = ids
    g = parse_envelope(
        {"type": "group", "payload": {"id": gid, "type": gtype, "name": gname, "properties": props}}
    ).payload
    assert g == GroupPayload(id=gid, type=gtype, name=gname, properties=props or {})
    a = parse_envelope({"type": "assign_group", "payload": {"groupIds": group_ids, "profileId": profile_id}})
    assert a.payload == AssignGroupPayload(
        group_ids=tuple(group_ids),
        profile_id=None if profile_id is None else _expected_profile_id(profile_id),
    )


# --- event-name blocklist ------------------------------------------------------------------------


@FAST
@given(st.text(ANY_CHAR, max_size=120), st.text(ANY_CHAR, max_size=5))
def test_long_names_are_always_blocked(text: str, tail: str) -> None:
    name = text + "x" * max(0, MAX_EVENT_NAME_LENGTH + 1 - _js_length(text)) + tail
    assert _js_length(name) > MAX_EVENT_NAME_LENGTH
    assert is_blocked_event_name(name)
    with pytest.raises(ValidationFailed, match=re.escape(f"body/payload/name {BLOCKED_EVENT_NAME_MESSAGE}")):
        parse_envelope({"type": "track", "payload": {"name": name}})


@FAST
@given(st.text(ANY_CHAR, max_size=30), st.sampled_from(["\n", "\r", "\r\n"]), st.text(ANY_CHAR, max_size=30))
def test_names_with_newlines_are_always_blocked(before: str, newline: str, after: str) -> None:
    assert is_blocked_event_name(before + newline + after)


@FAST
@given(st.text(ANY_CHAR, max_size=100))
def test_unblocked_names_are_short_and_single_line(name: str) -> None:
    if not is_blocked_event_name(name):
        assert _js_length(name) <= MAX_EVENT_NAME_LENGTH and "\n" not in name and "\r" not in name


# --- properties: clean_properties / to_dots -----------------------------------------------------

RESERVED_LIKE = [
    "__path",
    "__referrer",
    "__timestamp",
    "__revenue",
    "__ip",
    "__deviceId",
    "__identify",
    "__user_agent",
    "__reqId",
    "__os",
    "__browser",
    "__device",
    "__query",
    "__hash",
    "__bounce",
    "__bot",
    "__bot_reasons",
    "__botanist",
    "__path.x",
    "__query.utm_source",
    "\ud800__ip",
    "__b\udfffot",
    "__title",
    "a.b",
    "k" * 70,
    "é" * 33,
]
# Never stored from a client: only path_properties may produce __query.* / __hash.
CLIENT_FORBIDDEN_TOPS = {
    "__path",
    "__referrer",
    "__timestamp",
    "__revenue",
    "__ip",
    "__deviceId",
    "__identify",
    "__user_agent",
    "__reqId",
    "__os",
    "__osVersion",
    "__browser",
    "__browserVersion",
    "__device",
    "__brand",
    "__model",
    "__bounce",
}
long_strings = st.builds(
    lambda char, count, tail: char * count + tail,
    st.sampled_from(["a", "é", "€", "😀", " ", "{"]),
    st.integers(400, 2200),
    ANY_TEXT,
)
json_strings = st.builds(json.dumps, JSON)
prop_values = st.one_of(JSON, long_strings, json_strings)
prop_keys = st.one_of(st.sampled_from(RESERVED_LIKE), ANY_TEXT, st.text(ANY_CHAR, min_size=14, max_size=70))
prop_dicts = st.dictionaries(prop_keys, prop_values, max_size=12)
paths = st.one_of(
    st.none(),
    st.builds(
        lambda host, query, frag: f"https://{host}/p?{query}#{frag}",
        st.sampled_from(["example.com", "a.b"]),
        st.lists(st.tuples(ANY_TEXT, ANY_TEXT), max_size=6).map(
            lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
        ),
        ANY_TEXT,
    ),
)


def _cut_of(value: str, full: str) -> bool:
    """``value`` is ``full`` or its UTF-8 prefix within the value limit."""
    return value == full or full.encode().startswith(value.encode())


@FAST
@given(prop_dicts, paths)
def test_clean_properties_limits_and_strips(props: dict[str, Any], page: str | None) -> None:
    parsed = parse_path(page) if page is not None else None
    out = clean_properties(props, path=parsed)
    server = path_properties(parsed) if parsed is not None else {}
    flat = to_dots(props)
    assert isinstance(out, dict) and len(out) <= MAX_PROPERTIES
    for key, value in out.items():
        assert isinstance(key, str) and isinstance(value, str)
        assert 0 < len(key.encode()) <= MAX_KEY_BYTES
        assert 0 < len(value.encode()) <= MAX_VALUE_BYTES
        top = _top(key)
        assert top not in CLIENT_FORBIDDEN_TOPS and not top.startswith("__bot")
        if top in ("__query", "__hash"):
            assert server.get(key) == value  # the server's value; a client cannot set or override it
            continue
        assert _cut_of(value, flat[key])
        if value == flat[key]:
            assert value == value.strip()  # trimmed, cut values included
    for key in server:
        assert key in out  # path keys are added first, never crowded out


@REGRESSION
@given(
    st.text(st.characters(exclude_categories=["Z", "Cc", "Cs"]), max_size=200),
    st.sampled_from([" ", "\t", "\u3000", "\u00a0"]),
)
def test_values_cut_at_the_limit_stay_trimmed(text: str, space: str) -> None:
    prefix = "a" * (MAX_VALUE_BYTES - len(space.encode()) - len(text.encode())) + text
    out = clean_properties({"k": prefix + space + "b" * 100})
    assert out["k"] == out["k"].strip()


@FAST
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="."), min_size=1, max_size=70))
def test_keys_over_64_bytes_are_dropped(key: str) -> None:
    assume(not key.startswith("__") and not _SURROGATE.search(key))
    assert (key in clean_properties({key: "v"})) == (len(key.encode()) <= MAX_KEY_BYTES)


@FAST
@given(st.integers(MAX_PROPERTIES, MAX_PROPERTIES + 60), paths)
def test_at_most_100_properties(count: int, page: str | None) -> None:
    props = {f"k{i}": str(i) for i in range(count)}
    parsed = parse_path(page) if page is not None else None
    out = clean_properties(props, path=parsed)
    assert len(out) == MAX_PROPERTIES
    assert all(out[k] == props[k] for k in out if not k.startswith("__"))


@FAST
@given(
    depth=st.sampled_from([MAX_DEPTH, MAX_DEPTH + 1]) | st.integers(1, MAX_DEPTH + 8),
    dict_levels=st.lists(st.booleans(), min_size=MAX_DEPTH + 8, max_size=MAX_DEPTH + 8),
    json_from=st.none() | st.integers(1, MAX_DEPTH + 8),
    leaf=st.integers() | st.text(st.characters(exclude_categories=["Z", "Cc", "Cs"]), min_size=1),
)
def test_depth_beyond_32_is_dropped(
    depth: int, dict_levels: list[bool], json_from: int | None, leaf: int | str
) -> None:
    """A leaf inside ``depth`` containers (the top object is level 1) is kept iff depth ≤ 32,
    also when the inner levels arrive as a JSON string."""
    assume(not (isinstance(leaf, str) and leaf[0] in "{["))
    obj: Any = leaf
    segments: list[str] = []
    for level in range(depth - 1, 0, -1):  # innermost first; level 0 is the top dict below
        if dict_levels[level]:
            obj, segment = {"k": obj}, "k"
        else:
            obj, segment = [obj], "0"
        segments.insert(0, segment)
        if json_from == level:
            obj = json.dumps(obj)
    props = {"top": obj}
    expected = {".".join(["top", *segments]): str(leaf)} if depth <= MAX_DEPTH else {}
    assert to_dots(props) == expected
    assert clean_properties(props) == {k: v for k, v in expected.items() if len(k) <= MAX_KEY_BYTES}


def test_absurdly_nested_json_string_is_dropped() -> None:
    assert to_dots({"a": "[" * 100_000 + "]" * 100_000, "b": 1}) == {"b": "1"}


# --- URL parsing ---------------------------------------------------------------------------------

URL_PIECE = st.sampled_from(
    ["/", "//", "..", ".", "%2e", "%2E%2e", "\\", "?", "#", "&", "=", "%", "%zz", "%41", " ", "\t", "é", "😀"]
)
url_text = st.lists(URL_PIECE | st.text(ANY_CHAR, max_size=8), max_size=12).map("".join)
hosts = st.one_of(
    st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){0,3}", fullmatch=True),
    st.sampled_from(["[::1]", "[2001:db8::1]", "127.0.0.1", "bücher.de", "EXAMPLE.com", "[::1", "a..b", ""]),
    st.text(ANY_CHAR, max_size=10),
)
urls = st.one_of(
    st.text(ANY_CHAR, max_size=80),
    url_text,
    st.builds(
        lambda scheme, host, port, rest: f"{scheme}{host}{port}{rest}",
        st.sampled_from(["http://", "https://", "HTTPS://", "http:/", "ftp://", "  https://", "//", "/", ""]),
        hosts,
        st.sampled_from(["", ":80", ":443", ":8080", ":99999", ":x", ":"]),
        url_text,
    ),
    st.builds(lambda n, tail: "https://a.com/" + "é" * n + tail, st.integers(500, 2100), url_text),
    st.builds(
        lambda start, segments: start + "/".join(segments),
        st.sampled_from(["https://h.com/", "http://[::1]:8080/", "/", "/a/"]),
        st.lists(
            st.sampled_from(["a", "b", ".", "..", "%2e", "%2E%2e", ".%2E", "%2e.", "", "\\"]), max_size=6
        ),
    ),
)
_DOT_SEGMENTS = {".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"}


def _check_parsed_path(raw: str) -> None:
    p = parse_path(raw)
    assert len(p.path) <= MAX_URL_LENGTH
    for text in (p.path, p.origin, p.hash, *p.query, *p.query.values()):
        assert isinstance(text, str)
        text.encode("utf-8")  # no lone surrogates left to break storage
    assert p.hash == "" or p.hash.startswith("#")
    if p.origin:
        assert re.fullmatch(r"https?://[^/?#]+", p.origin), p.origin  # forbidden host chars: see below
        assert p.path.startswith("/") and p.path.isascii() and not re.search(r"[\s#?]", p.path)
        assert not any(seg.lower() in _DOT_SEGMENTS for seg in p.path.split("/"))
        again = parse_path(p.origin + p.path)
        if len(p.origin + p.path) <= MAX_URL_LENGTH:
            assert (again.origin, again.path) == (p.origin, p.path)  # already normalised
    elif p.query or p.hash:
        assert p.path.startswith("/")


@FAST
@given(urls)
def test_parse_path_never_raises_and_is_bounded(raw: str) -> None:
    _check_parsed_path(raw)


ORIGINS = {
    "https://h.com": "https://h.com",
    "http://[::1]:8080": "http://[::1]:8080",
    "HTTP://H.com:80": "http://h.com",
    "": "",
}


@FAST
@given(
    st.sampled_from(sorted(ORIGINS)),
    st.lists(st.sampled_from(["a", "b", ".", "..", "%2e", "%2E%2e", ".%2E", "%2e.", "", "\\"]), min_size=1),
    st.sampled_from(["", "/", "?q=/../x", "#/./h"]),
)
def test_dot_segments_are_resolved(start: str, segments: list[str], tail: str) -> None:
    p = parse_path(start + "/" + "/".join(segments) + tail)
    assert p.path.startswith("/")
    assert not any(seg.lower() in _DOT_SEGMENTS for seg in p.path.split("/")), p.path
    assert p.origin == ORIGINS[start]


@REGRESSION
@given(label, st.sampled_from([" ", "<", ">", "^", "|"]), label, schemes)
def test_forbidden_host_code_points_give_no_origin(left: str, bad: str, right: str, scheme: str) -> None:
    assert parse_path(f"{scheme}{left}{bad}{right}.com/x").origin == ""


@TINY
@given(st.none() | st.just(""))
def test_parse_path_empty(raw: str | None) -> None:
    p = parse_path(raw)
    assert (p.path, p.origin, p.query, p.hash) == ("", "", {}, "")


# --- referrers -----------------------------------------------------------------------------------

REFERRER_TYPES = {"", "search", "social", "ai", "email", "tech", "paid", "commerce", "content"}
KNOWN_HOSTS = sorted(REFERRERS)
ENTRY_NAMES = {name.lower() for name, _ in (*REFERRERS.values(), *REFERRER_PATTERNS.values()) if name} | {
    name.lower() for rules in REFERRER_PATHS.values() for _, name, _ in rules
}


def test_referrer_tables_use_only_allowed_types() -> None:
    types = {t for _, t in (*REFERRERS.values(), *REFERRER_PATTERNS.values())}
    types |= {t for rules in REFERRER_PATHS.values() for _, _, t in rules}
    assert types <= REFERRER_TYPES - {""}


@FAST
@given(urls | st.sampled_from(KNOWN_HOSTS).map(lambda h: f"https://www.{h}/x?q=1"))
def test_parse_referrer_never_raises(raw: str) -> None:
    ref = parse_referrer(raw)
    assert ref.type in REFERRER_TYPES
    assert isinstance(ref.name, str) and len(ref.url) <= MAX_URL_LENGTH
    assert bool(ref.type) == bool(ref.name)  # a classified host has both, an unknown one neither
    ref.url.encode("utf-8")


@FAST
@given(st.sampled_from(KNOWN_HOSTS), st.sampled_from(["https://", "http://", "", "//"]), st.booleans())
def test_known_hosts_are_classified(host: str, scheme: str, www: bool) -> None:
    name = f"www.{host}" if www else host
    assume(not www or name not in REFERRERS)
    assert (parse_referrer(f"{scheme}{name}/").name, parse_referrer(f"{scheme}{name}/").type) == REFERRERS[
        host
    ]
    via_utm = referrer_from_query({"utm_source": host.upper()})
    assert via_utm is not None and (via_utm.name, via_utm.type) == REFERRERS[host]


query_dicts = st.dictionaries(
    st.sampled_from(["utm_source", "ref", "utm_referrer", "utm_medium", "q"]) | ANY_TEXT,
    ANY_TEXT | st.sampled_from(KNOWN_HOSTS) | st.sampled_from(["Google", "GoOgLe", " ", ""]),
    max_size=5,
)


@FAST
@given(query_dicts)
def test_referrer_from_query_precedence(query: dict[str, str]) -> None:
    got = referrer_from_query(query)
    present = [k for k in ("utm_source", "ref", "utm_referrer") if query.get(k, "").strip()]
    if not present:
        assert got is None
        return
    assert got is not None and got.type in REFERRER_TYPES and got.url == ""
    assert got == referrer_from_query({present[0]: query[present[0]]})


@FAST
@given(st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True), st.booleans())
def test_unknown_utm_source_keeps_its_name(source: str, upper: bool) -> None:
    assume(source not in REFERRERS and f"{source}.com" not in REFERRERS and source not in ENTRY_NAMES)
    got = referrer_from_query({"utm_source": source.upper() if upper else source})
    assert got is not None and (got.name, got.type) == (source, "")


@FAST
@given(st.none() | urls, st.none() | urls, query_dicts)
def test_resolve_referrer_never_raises(ref_url: str | None, page: str | None, query: dict[str, str]) -> None:
    cols = resolve_referrer(ref_url, page, query)
    assert cols.referrer_type in REFERRER_TYPES
    assert len(cols.referrer) <= MAX_URL_LENGTH
    if cols.referrer:
        assert cols.referrer_name  # name falls back to the URL itself
    if not ref_url and referrer_from_query(query) is None:
        assert (cols.referrer, cols.referrer_name, cols.referrer_type) == ("", "", "")


@FAST
@given(
    st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z0-9-]{1,10}){1,2}", fullmatch=True) | st.sampled_from(KNOWN_HOSTS),
    st.booleans(),
    st.booleans(),
    url_text,
)
def test_same_site_referrer_is_dropped(host: str, www_ref: bool, www_page: bool, rest: str) -> None:
    ref = f"https://{'www.' if www_ref else ''}{host}/from"
    page = f"https://{'www.' if www_page else ''}{host}/{rest}"
    assume(parse_path(page).origin)
    cols = resolve_referrer(ref, page, {})
    assert (cols.referrer, cols.referrer_name, cols.referrer_type) == ("", "", "")
    assert parse_referrer(ref) != NO_REFERRER  # it was a referrer, dropped only as internal navigation


# --- user agents and bots ------------------------------------------------------------------------

PLATFORMS = [
    "Windows NT 10.0; Win64; x64",
    "Macintosh; Intel Mac OS X 10_15_7",
    "X11; Linux x86_64",
    "iPhone; CPU iPhone OS 16_5 like Mac OS X",
    "iPad; CPU OS 17_0 like Mac OS X",
    "Linux; Android 14; SM-S911B",
    "Linux; Android 13; SM-T870",
    "Linux; Android 10; K",
    "compatible; MSIE 9.0; Windows NT 6.1",
]
ENGINES = [
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.5 Mobile/15E148 Safari/604.1",
    "Gecko/20100101 Firefox/121.0",
    "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 EdgA/120",
    "",
]
ua_like = st.builds(
    lambda platform, engine, junk: f"Mozilla/5.0 ({platform}) {engine}{junk}",
    st.sampled_from(PLATFORMS),
    st.sampled_from(ENGINES),
    HEADER_TEXT,
)
single_token = st.builds(
    lambda name, version: f"{name}/{version}",
    st.text(st.characters(exclude_characters="/", exclude_categories=["Cs"]), min_size=1, max_size=20),
    st.from_regex(r"[\d.]+", fullmatch=True),
)
user_agents = st.one_of(st.none(), HEADER_TEXT, ua_like, single_token)


@SLOW
@given(user_agents)
def test_parse_user_agent_never_raises(ua: str | None) -> None:
    info = parse_user_agent(ua)
    assert isinstance(info, UserAgentInfo)
    assert info.device in ("desktop", "mobile", "tablet", "server")
    assert (info.device == "server") == info.is_server
    if info.is_server:
        assert info == SERVER_USER_AGENT  # every field empty
    for field in ("os", "os_version", "browser", "browser_version", "brand", "model"):
        assert isinstance(getattr(info, field), str)


@FAST
@given(single_token)
def test_single_token_user_agents_are_servers(ua: str) -> None:
    assert parse_user_agent(ua) == SERVER_USER_AGENT


@SLOW
@given(
    user_agents,
    st.dictionaries(
        st.sampled_from(sorted(OVERRIDE_PROPERTIES)) | ANY_TEXT,
        st.none() | st.just("") | st.integers() | st.text(min_size=1, max_size=10),
        max_size=8,
    ),
)
def test_apply_overrides(ua: str | None, props: dict[str, Any]) -> None:
    info = parse_user_agent(ua)
    got = apply_overrides(info, props)
    if info.is_server:
        assert got == info
        return
    for key, field in OVERRIDE_PROPERTIES.items():
        value = props.get(key)
        expected = value if isinstance(value, str) and value else getattr(info, field)
        assert getattr(got, field) == expected
    assert got.is_server is False


BOT_TYPES = set(BOT_TYPE_BY_TAG.values()) | {DEFAULT_BOT_TYPE}


@SLOW
@given(user_agents)
def test_detect_bot_never_raises(ua: str | None) -> None:
    bot = detect_bot(ua)
    if bot is not None:
        assert isinstance(bot.name, str) and bot.name
        assert bot.type in BOT_TYPES


@SLOW
@given(
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30),
    st.sampled_from(
        ["Googlebot/2.1", "AhrefsBot/7.0", "bingbot/2.0", "GPTBot/1.0", "facebookexternalhit/1.1"]
    ),
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30),
)
def test_known_crawlers_are_found_anywhere_in_the_ua(before: str, token: str, after: str) -> None:
    assert detect_bot(f"{before} {token} {after}") is not None


HEADER_NAMES = ["sec-ch-ua", "sec-fetch-mode", "sec-fetch-site", "accept-language", "x-other"]


@SLOW
@given(
    user_agents,
    st.dictionaries(
        st.sampled_from(HEADER_NAMES).flatmap(lambda n: st.sampled_from([n, n.upper(), n.title()]))
        | HEADER_TEXT,
        HEADER_TEXT,
        max_size=6,
    ),
    st.booleans(),
    st.none() | st.integers(0, 2**32),
)
def test_soft_bot_reasons(ua: str | None, headers: dict[str, str], datacenter: bool, asn: int | None) -> None:
    reasons = soft_bot_reasons(ua, headers, datacenter, asn)
    header_reasons = {MISSING_SEC_CH_UA, MISSING_SEC_FETCH, MISSING_ACCEPT_LANGUAGE}
    dc_reason = DATACENTER_REASON if asn is None else f"{DATACENTER_REASON}:AS{asn}"
    assert len(reasons) == len(set(reasons))
    if not ua or parse_user_agent(ua).is_server:
        assert reasons == []
        return
    assert (dc_reason in reasons) == datacenter
    assert set(reasons) <= header_reasons | {dc_reason}
    present = {name.lower() for name, value in headers.items() if value.strip()}
    if "Mozilla/" not in ua:
        assert set(reasons) <= {dc_reason}
    else:
        assert (MISSING_ACCEPT_LANGUAGE in reasons) == ("accept-language" not in present)
        assert (MISSING_SEC_FETCH in reasons) == (not {"sec-fetch-mode", "sec-fetch-site"} & present)
        if MISSING_SEC_CH_UA in reasons:
            assert "sec-ch-ua" not in present
    full = {"Sec-CH-UA": '"Chromium";v="120"', "SEC-FETCH-MODE": "cors", "Accept-Language": "en"}
    assert soft_bot_reasons(ua, full, False, None) == []
    assert soft_bot_reasons(ua, {k.lower(): v for k, v in full.items()}, False, None) == []


# --- identity --------------------------------------------------------------------------------------

id_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).filter(
    lambda t: not _SURROGATE.search(t)
)  # headers, ips and ids never carry lone surrogates


@FAST
@given(id_text, id_text, id_text, id_text, id_text)
def test_device_id_shape(ua: str, ip: str, project: str, salt: str, other_salt: str) -> None:
    got = device_id(ua, ip, project, salt)
    assert re.fullmatch(r"[0-9a-f]{32}", got)
    assert got == device_id(ua, ip, project, salt)
    assert got == hashlib.shake_256(f"{ua}:{ip}:{project}:{salt}".encode()).hexdigest(16)
    if other_salt != salt:
        assert device_id(ua, ip, project, other_salt) != got


@FAST
@given(
    project=id_text,
    device=id_text,
    t1=st.integers(0, 2**42),
    t2=st.integers(0, 2**42) | st.integers(-10_000, 10_000),
    timeout=st.sampled_from([1_800_000, 60_000, 6, 5, 1]) | st.integers(1, 10**8),
)
def test_session_id_constant_within_a_bucket(
    project: str, device: str, t1: int, t2: int, timeout: int
) -> None:
    t2 = t2 if t2 > 10_000 else max(0, t1 + t2)  # also nearby times, across boundaries
    grace = min(5_000, timeout // 6)
    bucket1, bucket2 = (t1 - grace) // timeout, (t2 - grace) // timeout
    assert session_bucket(t1, timeout) == bucket1
    s1, s2 = session_id(project, device, t1, timeout), session_id(project, device, t2, timeout)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", s1)
    assert (s1 == s2) == (bucket1 == bucket2)
    start = bucket1 * timeout + grace  # first and last ms of t1's bucket
    assert session_id(project, device, start, timeout) == s1
    assert session_id(project, device, start + timeout - 1, timeout) == s1
    assert session_id(project, device, start + timeout, timeout) != s1


@FAST
@given(
    JSON
    | st.builds(
        lambda before, core, after: before + core + after,
        st.text(st.characters(categories=["Zs", "Cc"]), max_size=3),
        st.builds(str.__add__, st.integers(0, 70).map("x".__mul__), st.text(max_size=3)),
        st.text(st.characters(categories=["Zs", "Cc"]), max_size=3),
    )
)
def test_sanitize_device_id_override(value: Any) -> None:
    got = sanitize_device_id_override(value)
    if not isinstance(value, str):
        assert got is None
        return
    trimmed = value.strip()
    if 1 <= len(trimmed) <= MAX_DEVICE_ID_OVERRIDE_LEN:
        assert got == trimmed
    else:
        assert got is None


# --- client IP -------------------------------------------------------------------------------------

NOBODY = TrustedProxies()
PROXIES = TrustedProxies.from_cidrs(["10.0.0.0/8", "fd00::/8", "192.0.2.7"])
FORWARDING_HEADERS = [
    "x-forwarded-for",
    "x-real-ip",
    "forwarded",
    "cf-connecting-ip",
    "true-client-ip",
    "openpanel-client-ip",
    "x-client-ip",
    "fastly-client-ip",
]


def _normal(addr: IPv4Address | IPv6Address) -> str:
    mapped = addr.ipv4_mapped if isinstance(addr, IPv6Address) else None
    return str(mapped or addr)


def _ip_text(addr: IPv4Address | IPv6Address, style: int, port: int) -> str:
    """The textual forms a socket peer or a proxy hop may take, all meaning ``addr``."""
    if isinstance(addr, IPv4Address):
        forms = [str(addr), f"{addr}:{port}", f"::ffff:{addr}", f"[::ffff:{addr}]:{port}", f' "{addr}" ']
    else:
        forms = [str(addr), f"[{addr}]", f"[{addr}]:{port}", addr.exploded, f' "[{addr}]:{port}"']
    return forms[style % len(forms)]


ip_texts = st.builds(_ip_text, st.ip_addresses(), st.integers(0, 9), st.integers(0, 65535))
forged_values = st.one_of(
    ip_texts,
    st.lists(ip_texts, min_size=1, max_size=4).map(", ".join),
    st.lists(ip_texts, min_size=1, max_size=3).map(lambda xs: ", ".join(f'for="{x.strip()}"' for x in xs)),
    HEADER_TEXT,
)
forged_headers = st.dictionaries(st.sampled_from(FORWARDING_HEADERS), forged_values)


@FAST
@given(
    st.ip_addresses(),
    st.integers(0, 9),
    st.integers(0, 65535),
    forged_headers,
    st.sampled_from([NOBODY, PROXIES]),
    st.none() | forged_values,
)
def test_untrusted_peer_is_the_client_whatever_the_headers(
    addr: IPv4Address | IPv6Address,
    style: int,
    port: int,
    headers: dict[str, str],
    trusted: TrustedProxies,
    override: str | None,
) -> None:
    assume(ipaddress.ip_address(_normal(addr)) not in trusted)
    peer = _ip_text(addr, style, port)
    got = resolve_client_ip(peer, headers, trusted, secret_authenticated=False, override=override)
    assert got == _normal(addr)


NOT_AN_ADDRESS = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "unknown", "1.2.3", "300.1.1.1", "[::1", "[::1]x", "1.2.3.4:x", "::1]:80", '"'])
    | st.text(st.characters(categories=["L", "Zs"]) | st.sampled_from(list("_-;")), max_size=20),
)


@FAST
@given(NOT_AN_ADDRESS, forged_headers, st.sampled_from([NOBODY, PROXIES]))
def test_unparsable_peer_gives_empty_ip(
    peer: str | None, headers: dict[str, str], trusted: TrustedProxies
) -> None:
    assert resolve_client_ip(peer, headers, trusted, secret_authenticated=False) == ""


trusted_addrs = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"),
    st.ip_addresses(network="fd00::/8"),
    st.just(IPv4Address("192.0.2.7")),
)
untrusted_addrs = st.ip_addresses().filter(lambda a: ipaddress.ip_address(_normal(a)) not in PROXIES)
styled = st.tuples(st.integers(0, 9), st.integers(0, 65535))


@FAST
@given(
    peer=trusted_addrs,
    forged_left=st.lists(forged_values.filter(lambda v: "," not in v), max_size=3),
    client=untrusted_addrs,
    hops=st.lists(trusted_addrs, max_size=3),
    styles=st.lists(styled, min_size=5, max_size=5),
    use_rfc7239=st.booleans(),
    extra=forged_headers,
)
def test_trusted_proxy_chain_yields_the_rightmost_untrusted_hop(
    peer: IPv4Address | IPv6Address,
    forged_left: list[str],
    client: IPv4Address | IPv6Address,
    hops: list[IPv4Address | IPv6Address],
    styles: list[tuple[int, int]],
    use_rfc7239: bool,
    extra: dict[str, str],
) -> None:
    """Whatever the client put left of its own address, the proxies' appended hops decide."""
    chain = [_ip_text(a, *styles[i % len(styles)]) for i, a in enumerate([client, *hops])]
    headers = {k: v for k, v in extra.items() if k not in ("x-forwarded-for", "forwarded")}
    if use_rfc7239:
        hop_values = [f'for="{x.strip()}";proto=https' for x in chain]
        headers["forwarded"] = ", ".join([*(f"for={f.strip()}" for f in forged_left), *hop_values])
    else:
        headers["x-forwarded-for"] = ", ".join([*forged_left, *chain])
    peer_text = _ip_text(peer, *styles[0])
    got = resolve_client_ip(peer_text, headers, PROXIES, secret_authenticated=False)
    assert got == _normal(client)
    assert ipaddress.ip_address(got) not in PROXIES


@FAST
@given(
    peer=trusted_addrs,
    forged=untrusted_addrs,
    junk=st.sampled_from(["unknown", "garbage", "_hidden", "1.2.3", "[::1", "300.1.1.1"]),
    hops=st.lists(trusted_addrs, max_size=3),
    real_ip=st.none() | untrusted_addrs,
)
def test_hops_left_of_an_unparsable_entry_are_never_believed(
    peer: IPv4Address | IPv6Address,
    forged: IPv4Address | IPv6Address,
    junk: str,
    hops: list[IPv4Address | IPv6Address],
    real_ip: IPv4Address | IPv6Address | None,
) -> None:
    headers = {"x-forwarded-for": ", ".join([str(forged), junk, *map(str, hops)])}
    if real_ip is not None:
        headers["x-real-ip"] = str(real_ip)
    got = resolve_client_ip(str(peer), headers, PROXIES, secret_authenticated=False)
    assert got == _normal(real_ip if real_ip is not None else peer)


# --- Origin allow-list ------------------------------------------------------------------------------


@FAST
@given(domains, schemes, st.booleans(), st.booleans())
def test_plain_entry_matches_its_own_origin(host: str, scheme: str, slash: bool, upper: bool) -> None:
    origin = f"{scheme}{host.upper() if upper else host}{'/' if slash else ''}"
    for entry in (host, f"https://{host}", f"www.{host}", f"{host}/"):
        assert origin_allowed(origin, (entry,))
    assert origin_allowed(f"{scheme}www.{host}", (host,))


@FAST
@given(domains, st.lists(label, min_size=1, max_size=3), schemes)
def test_wildcard_matches_subdomains(host: str, sub: list[str], scheme: str) -> None:
    assume(sub[0] != "www")  # www.<host> under *.<host>: see below
    assert origin_allowed(f"{scheme}{'.'.join(sub)}.{host}", (f"*.{host}",))


@REGRESSION
@given(domains, schemes)
def test_wildcard_matches_the_www_subdomain(host: str, scheme: str) -> None:
    assert origin_allowed(f"{scheme}www.{host}", (f"*.{host}",))


@FAST
@given(
    domains,
    st.lists(label, min_size=1, max_size=3).map(".".join),
    st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True),
    schemes,
    st.sampled_from(["", ":443", ":8080"]),
)
def test_wildcard_never_matches_lookalikes(host: str, tail: str, glued: str, scheme: str, port: str) -> None:
    suffixed = f"{host}.{tail}"  # example.com.evil.net
    assume(not suffixed.endswith(f".{host}"))
    prefixed = f"{glued}{host}"  # evilexample.com
    for entry in (f"*.{host}", host):
        assert not origin_allowed(f"{scheme}{suffixed}{port}", (entry,))
        assert not origin_allowed(f"{scheme}{prefixed}{port}", (entry,))
    assert not origin_allowed(f"{scheme}{host}", (f"*.{host}",))  # the apex itself is not a subdomain


@FAST
@given(domains, st.from_regex(r"[a-z0-9.-]{1,12}", fullmatch=True), schemes, ANY_TEXT)
def test_null_userinfo_and_paths_are_rejected(host: str, evil: str, scheme: str, junk: str) -> None:
    allowed = (host, f"*.{host}", "*")
    bad = [
        "null",
        "",
        None,
        f"{scheme}user@{host}",
        f"{scheme}{host}@{evil}",
        f"{scheme}{evil}@{host}",
        f"{scheme}{host}/path",
        f"{scheme}{host}?q=1",
        f"{scheme}{host}#x",
        f"{scheme}{host}/{junk}x",
        f"{scheme}{host} x{junk}",
        f"{host}",
    ]
    for origin in bad:
        assert not origin_allowed(origin, allowed), origin


@FAST
@given(ANY_TEXT | st.none(), st.lists(ANY_TEXT | domains, max_size=4).map(tuple))
def test_origin_allowed_never_raises(origin: str | None, allowed: tuple[str, ...]) -> None:
    assert origin_allowed(origin, allowed) in (True, False)
