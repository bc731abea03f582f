#!/usr/bin/env python3
"""Generate openpanel_lite/dashboard/worldmap_data.py: one SVG path per country, keyed by ISO alpha-2.

Usage, from the repo root: python scripts/gen_worldmap.py [--check]
--check exits 1 when the committed file differs from what this script would write.

Reads the vendored world-atlas TopoJSON (Natural Earth 1:110m, public domain; world-atlas is ISC), maps
its ISO 3166-1 numeric ids to alpha-2 with PyPI `iso3166` (MIT; only needed here, not at run time),
projects with the Natural Earth I projection and writes compact relative path data.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import iso3166  # type: ignore[import-not-found, unused-ignore]

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE = REPO_ROOT / "web" / "static" / "vendor" / "world-atlas-2.0.2" / "countries-110m.json"
OUTPUT = REPO_ROOT / "openpanel_lite" / "dashboard" / "worldmap_data.py"
COMMAND = "python scripts/gen_worldmap.py"
LINE_LIMIT = 110
CHUNK = 96  # characters of path data per source line

# Output units: the map is WIDTH wide; one unit is half a pixel at a typical 1000 px render.
WIDTH = 2000
MARGIN = 4
# Antarctica takes a sixth of the map and has no visitors worth a colour.
SKIP_IDS = {"010"}
# Features without an ISO numeric id in Natural Earth. Kosovo uses the user-assigned XK, as GeoIP
# databases do; Northern Cyprus and Somaliland have no code of their own and stay uncoloured.
NAME_CODES = {"Kosovo": "XK"}

Ring = list[tuple[float, float]]


def natural_earth(lon: float, lat: float) -> tuple[float, float]:
    """Natural Earth I projection (Šavrič, Jenny, Patterson, Petrovič, Hurni 2011), radians in, unit out."""
    lam, phi = math.radians(lon), math.radians(lat)
    phi2 = phi * phi
    phi4 = phi2 * phi2
    x = lam * (0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4)))
    y = phi * (1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4)))
    return x, y


def decode_arcs(topo: dict[str, object]) -> list[Ring]:
    """TopoJSON arcs are quantized and delta-encoded: undo both to get lon/lat points."""
    transform = topo["transform"]
    assert isinstance(transform, dict)
    (sx, sy), (tx, ty) = transform["scale"], transform["translate"]
    arcs: list[Ring] = []
    raw_arcs = topo["arcs"]
    assert isinstance(raw_arcs, list)
    for raw in raw_arcs:
        x = y = 0
        ring: Ring = []
        for dx, dy in raw:
            x += dx
            y += dy
            ring.append((x * sx + tx, y * sy + ty))
        arcs.append(ring)
    return arcs


def stitch(indexes: Sequence[int], arcs: list[Ring]) -> Ring:
    """A ring from arc indexes; ~i means arc i reversed; shared end points are not repeated."""
    ring: Ring = []
    for index in indexes:
        points = arcs[index] if index >= 0 else arcs[~index][::-1]
        ring.extend(points if not ring else points[1:])
    return ring


def unwrap(ring: Ring) -> Ring:
    """Make longitudes continuous: Natural Earth cuts Russia and Fiji at ±180, and their rings jump."""
    out: Ring = [ring[0]]
    for lon, lat in ring[1:]:
        prev = out[-1][0]
        while lon - prev > 180:
            lon -= 360
        while lon - prev < -180:
            lon += 360
        out.append((lon, lat))
    return out


def clip(ring: Ring, inside: Callable[[float], bool], edge: float) -> Ring:
    """Sutherland-Hodgman against one vertical line x = edge (ring open: no repeated first point)."""
    out: Ring = []
    for i, current in enumerate(ring):
        before = ring[i - 1]
        if inside(current[0]) != inside(before[0]):
            t = (edge - before[0]) / (current[0] - before[0])
            out.append((edge, before[1] + t * (current[1] - before[1])))
        if inside(current[0]):
            out.append(current)
    return out


def split_at_antimeridian(ring: Ring) -> list[Ring]:
    """The parts of an unwrapped ring that fall in [-180, 180], each shifted back into range."""
    ring = unwrap(ring[:-1] if ring[0] == ring[-1] else ring)
    parts: list[Ring] = []
    for shift in (-360.0, 0.0, 360.0):
        moved = [(lon + shift, lat) for lon, lat in ring]
        piece = clip(clip(moved, lambda x: x <= 180, 180.0), lambda x: x >= -180, -180.0)
        if len(piece) >= 3 and abs(area(piece)) > 1e-9:
            parts.append(piece)
    return parts


def area(ring: Ring) -> float:
    """Shoelace area (signed); used to drop slivers left by clipping."""
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True)) / 2


def polygons_of(geometry: dict[str, object]) -> list[list[list[int]]]:
    arcs = geometry["arcs"]
    assert isinstance(arcs, list)
    if geometry["type"] == "Polygon":
        return [arcs]
    if geometry["type"] == "MultiPolygon":
        return list(arcs)
    raise ValueError(f"unexpected geometry type {geometry['type']!r}")


def path_data(rings: list[list[tuple[int, int]]]) -> str:
    """'M x y l dx dy dx dy … z' per ring: relative moves keep the numbers short."""
    out: list[str] = []
    for ring in rings:
        parts = [f"M{ring[0][0]} {ring[0][1]}l"]
        px, py = ring[0]
        deltas: list[str] = []
        for x, y in ring[1:]:
            deltas.append(f"{x - px} {y - py}")
            px, py = x, y
        # "3 -2" can be written "3-2": the minus sign is already a separator in SVG path syntax.
        parts.append(" ".join(deltas).replace(" -", "-"))
        out.append("".join(parts) + "z")
    return "".join(out)


def build(topo: dict[str, object]) -> tuple[int, list[tuple[str, str, str]]]:
    """(height, [(code, name, path)]) sorted by code then name."""
    arcs = decode_arcs(topo)
    objects = topo["objects"]
    assert isinstance(objects, dict)
    geometries = objects["countries"]["geometries"]
    by_numeric = iso3166.countries_by_numeric
    shapes: list[tuple[str, str, list[Ring]]] = []
    for geometry in geometries:
        numeric = geometry.get("id")
        name = geometry["properties"]["name"]
        if numeric in SKIP_IDS:
            continue
        code = by_numeric[numeric].alpha2 if numeric else NAME_CODES.get(name, "")
        rings: list[Ring] = []
        for polygon in polygons_of(geometry):
            for indexes in polygon:
                for part in split_at_antimeridian(stitch(indexes, arcs)):
                    rings.append([natural_earth(lon, lat) for lon, lat in part])
        shapes.append((code, name, rings))
    scale = (WIDTH - 2 * MARGIN) / (2 * natural_earth(180, 0)[0])
    top = max(y for _, _, rings in shapes for ring in rings for _, y in ring)
    bottom = min(y for _, _, rings in shapes for ring in rings for _, y in ring)
    height = math.ceil((top - bottom) * scale) + 2 * MARGIN
    half = natural_earth(180, 0)[0]
    out: list[tuple[str, str, str]] = []
    for code, name, rings in shapes:
        rounded: list[list[tuple[int, int]]] = []
        for ring in rings:
            points: list[tuple[int, int]] = []
            for x, y in ring:
                # SVG y grows downwards, so north (larger y) maps to smaller numbers.
                point = (round((x + half) * scale) + MARGIN, round((top - y) * scale) + MARGIN)
                if not points or points[-1] != point:
                    points.append(point)
            if len(points) > 1 and points[0] == points[-1]:
                points.pop()
            if len(set(points)) >= 3:
                rounded.append(points)
        if rounded:
            out.append((code, name, path_data(rounded)))
    out.sort(key=lambda item: (item[0] == "", item[0], item[1]))
    return height, out


def _literal(text: str) -> str:
    """A double-quoted Python string literal (the form ruff format keeps)."""
    return json.dumps(text, ensure_ascii=False)


def render(height: int, countries: list[tuple[str, str, str]]) -> str:
    keyed = sum(1 for code, _, _ in countries if code)
    lines = [
        '"""World map shapes: alpha-2 -> SVG path. GENERATED by scripts/gen_worldmap.py, do not edit.',
        "",
        f"Regenerate from the repo root: {COMMAND}",
        "Source: web/static/vendor/world-atlas-2.0.2/countries-110m.json (world-atlas, ISC; shapes from",
        "Natural Earth 1:110m Admin 0, public domain). Numeric ids -> alpha-2 via PyPI iso3166 (MIT),",
        "at generation time only. Projection: Natural Earth I; Antarctica left out.",
        f"Shapes: {len(countries)}, with an alpha-2 code: {keyed}.",
        '"""',
        "",
        f"WIDTH = {WIDTH}",
        f"HEIGHT = {height}",
        "",
        '# (alpha-2 code or "" where there is none; Natural Earth name; path data in WIDTH x HEIGHT units)',
        "COUNTRIES: tuple[tuple[str, str, str], ...] = (",
    ]
    for code, name, path in countries:
        lines.append("    (")
        lines.append(f"        {_literal(code)},")
        lines.append(f"        {_literal(name)},")
        chunks = [path[i : i + CHUNK] for i in range(0, len(path), CHUNK)]
        if len(chunks) == 1:
            lines.append(f"        {_literal(chunks[0])},")
        else:
            lines.append("        (")
            lines.extend(f"            {_literal(chunk)}" for chunk in chunks)
            lines.append("        ),")
        lines.append("    ),")
    lines.append(")")
    too_long = [line for line in lines if len(line) > LINE_LIMIT]
    if too_long:
        raise ValueError(f"generated lines over {LINE_LIMIT} chars: {too_long[:3]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file is out of date")
    args = parser.parse_args(argv)
    topo = json.loads(SOURCE.read_text(encoding="utf-8"))
    text = render(*build(topo))
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO_ROOT)} is stale: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO_ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
