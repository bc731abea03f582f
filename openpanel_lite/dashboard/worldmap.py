"""World map choropleth: countries keyed by ISO 3166-1 alpha-2, shaded by value, with a legend.

The shapes are generated once (scripts/gen_worldmap.py -> worldmap_data.py); here we only pick a shade
per country. Shades are CSS classes (`op-map__c--0` … `--5`), so dark mode is a stylesheet matter. Every
name and number goes through escaping; values' keys are looked up, never printed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from markupsafe import Markup, escape

from openpanel_lite.dashboard import worldmap_data
from openpanel_lite.dashboard.formatting import compact_number

SVG_NS = "http://www.w3.org/2000/svg"
LEVELS = 5


def level(value: float, high: float) -> int:
    """Shade 1..LEVELS for a positive value, 0 for none.

    A square-root scale: visits are long-tailed, and a linear one would leave all but the top country
    in the palest shade.
    """
    if not (math.isfinite(value) and value > 0 and high > 0):
        return 0
    return min(LEVELS, max(1, math.ceil(LEVELS * math.sqrt(value / high) - 1e-9)))


def level_floor(step: int, high: float) -> float:
    """The smallest value shown in shade `step` (the legend's lower bounds)."""
    return high * ((step - 1) / LEVELS) ** 2


def _usable(values: Mapping[str, float]) -> dict[str, float]:
    """Upper-cased codes with finite positive values (events may store 'se'; 0 means no shade)."""
    out: dict[str, float] = {}
    for code, value in values.items():
        if isinstance(code, str) and math.isfinite(value) and value > 0:
            key = code.strip().upper()
            out[key] = out.get(key, 0.0) + value
    return out


def world_map(
    values: Mapping[str, float],
    *,
    value_format: Callable[[float], str] = compact_number,
    label: str = "Sessions",
) -> Markup:
    """A `<figure>` with the SVG map (one `<path>` per country, `<title>` "Sweden: 1.2k") and a legend.

    `values` maps alpha-2 codes to a metric; codes the map has no shape for (small states at this
    scale) are left to the country table.
    """
    data = _usable(values)
    shapes = worldmap_data.COUNTRIES
    shown = {code for code, _, _ in shapes if code}
    high = max((v for code, v in data.items() if code in shown), default=0.0)
    view_box = f"0 0 {worldmap_data.WIDTH} {worldmap_data.HEIGHT}"
    out = [
        '<figure class="op-map">',
        f'<svg xmlns="{SVG_NS}" class="op-map__svg" viewBox="{view_box}" '
        f'role="img" aria-label="{escape(label)} by country">',
        '<g class="op-map__countries" fill-rule="evenodd">',
    ]
    for code, name, path in shapes:
        value = data.get(code, 0.0) if code else 0.0
        shade = level(value, high)
        title = f"{name}: {value_format(value)}" if code else name
        key = f' data-country="{code}"' if code else ""
        out.append(f'<path class="op-map__c op-map__c--{shade}"{key} d="{path}">')
        out.append(f"<title>{escape(title)}</title></path>")
    out.append("</g></svg>")
    out.append(_legend(high, value_format, label))
    out.append("</figure>")
    return Markup("".join(out))


def _legend(high: float, value_format: Callable[[float], str], label: str) -> str:
    """Swatches from the palest to the darkest shade, with the range's ends written out."""
    if high <= 0:
        empty = "No countries in this period"
        return f'<figcaption class="op-map__legend op-map__legend--empty">{empty}</figcaption>'
    parts = [
        f'<figcaption class="op-map__legend"><span class="op-map__legend-label">{escape(label)}</span>',
        f'<span class="op-map__legend-end">{escape(value_format(0))}</span>',
    ]
    for step in range(1, LEVELS + 1):
        low = value_format(level_floor(step, high))
        top = value_format(level_floor(step + 1, high)) if step < LEVELS else value_format(high)
        parts.append(
            f'<span class="op-map__swatch op-map__c--{step}" title="{escape(low)} – {escape(top)}"></span>'
        )
    parts.append(f'<span class="op-map__legend-end">{escape(value_format(high))}</span></figcaption>')
    return "".join(parts)
