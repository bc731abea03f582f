"""Server-rendered SVG charts for the overview: the main time series (line or bars) and sparklines.

The SVG is fluid without a viewBox on the outer element: x positions are percentages of the chart width
and y positions are pixels of a fixed height, so text keeps its size from 360 px phones to desktops. The
series paths live in a nested `<svg preserveAspectRatio="none">` whose x unit is 1% of the width; their
strokes use `vector-effect="non-scaling-stroke"` so stretching does not thicken them.

Each bucket gets a transparent hover target with a `<title>`, so tooltips work without JavaScript.
Every string that came from data (labels) is escaped here; `Markup` only wraps text this module wrote.
Output is deterministic: same input, same bytes (tests compare strings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from markupsafe import Markup, escape

from openpanel_lite.dashboard.formatting import compact_number

ValueFormat = Callable[[float], str]

# Vertical layout in pixels: room above the top grid line, and the x-axis label band at the bottom.
PAD_TOP = 12
AXIS_BAND = 24
# One x label per this many nominal pixels; more would overlap at typical label lengths ("Mar 12").
LABEL_SPACING = 90
AXIS_LABEL_MAX = 14
SVG_NS = "http://www.w3.org/2000/svg"


class Point(NamedTuple):
    """One time bucket: its label (axis and tooltip, e.g. "Mar 3" or "14:00") and its value."""

    label: str
    value: float


def _n(value: float) -> str:
    """A coordinate with at most 2 decimals and no trailing zeros: 12.50 -> '12.5', 3.0 -> '3'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _clean(value: float) -> float:
    """Values the axis can draw: NaN/inf and negatives (not expected from counts) become 0."""
    return value if math.isfinite(value) and value > 0 else 0.0


def nice_ticks(high: float, count: int = 4, whole_numbers: bool = True) -> list[float]:
    """Axis ticks from 0 to a rounded top >= high, with a step of 1, 2, 2.5 or 5 times a power of ten.

    nice_ticks(1234) == [0, 500, 1000, 1500]; nice_ticks(0) == [0, 1, 2, 3, 4]. With whole_numbers the
    step is at least 1, since counts have no fractional ticks.
    """
    if not math.isfinite(high) or high <= 0:
        return [float(i) for i in range(count + 1)]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    # A step of 2.5 (or anything below 1) would put half units on a count axis; 25, 250 … are fine.
    factors = (1, 2, 5, 10) if whole_numbers and magnitude < 10 else (1, 2, 2.5, 5, 10)
    step = next(f * magnitude for f in factors if raw <= f * magnitude * (1 + 1e-9))
    if whole_numbers:
        step = max(1.0, step)
    steps = math.ceil(high / step - 1e-9)
    return [float(round(i * step, 10)) for i in range(steps + 1)]


def _tooltip(
    point: Point, prev: Point | None, label: str, previous_label: str, value_format: ValueFormat
) -> str:
    """Plain text for a bucket's <title>; the caller escapes it."""
    lines = [point.label, f"{label}: {value_format(point.value)}"]
    if prev is not None:
        lines.append(f"{previous_label} ({prev.label}): {value_format(prev.value)}")
    return "\n".join(lines)


def _label_indexes(count: int, width: int) -> list[int]:
    """Which buckets get an x label: every `stride`-th, so that labels do not overlap at `width`."""
    most = max(2, width // LABEL_SPACING)
    stride = max(1, math.ceil(count / most))
    return list(range(0, count, stride))


def _short(label: str) -> str:
    """Axis labels are cut to AXIS_LABEL_MAX characters; the tooltip keeps the whole label."""
    return label if len(label) <= AXIS_LABEL_MAX else label[: AXIS_LABEL_MAX - 1] + "…"


def _anchor(x_percent: float) -> str:
    """Labels near the edges grow inwards so they are not cut off."""
    if x_percent < 8:
        return "start"
    if x_percent > 92:
        return "end"
    return "middle"


class _Frame(NamedTuple):
    """The shared skeleton of a time chart: scale, grid, y labels and x labels."""

    plot_height: float
    top: float
    head: list[str]
    y_labels: str


def _frame(
    points: Sequence[Point],
    previous: Sequence[Point],
    centers: Sequence[float],
    *,
    kind: str,
    width: int,
    height: int,
    value_format: ValueFormat,
    label: str,
    whole_numbers: bool,
) -> _Frame:
    plot_height = float(height - PAD_TOP - AXIS_BAND)
    high = max([_clean(p.value) for p in points] + [_clean(p.value) for p in previous])
    ticks = nice_ticks(high, whole_numbers=whole_numbers)
    top = ticks[-1]
    count = len(points)
    aria = f"{label}: {count} bucket{'' if count == 1 else 's'} from {points[0].label} to {points[-1].label}"
    # A lone bucket draws no line, so CSS keeps its dot visible (op-chart--single).
    single = " op-chart--single" if count == 1 else ""
    head = [
        f'<svg xmlns="{SVG_NS}" class="op-chart op-chart--{kind}{single}" width="100%" height="{height}" '
        # Focusable: chart.js moves through the buckets with the arrow keys (one tab stop per chart).
        f'role="img" aria-label="{escape(aria)}" tabindex="0" '
        'aria-keyshortcuts="ArrowLeft ArrowRight Home End">',
        '<g class="op-chart__grid" aria-hidden="true">',
    ]
    for tick in ticks:
        y = _n(PAD_TOP + plot_height - tick / top * plot_height)
        head.append(f'<line x1="0" x2="100%" y1="{y}" y2="{y}"/>')
    head.append("</g>")
    head.append('<g class="op-chart__xl" aria-hidden="true">')
    for i in _label_indexes(len(points), width):
        x = centers[i]
        text = escape(_short(points[i].label))
        head.append(f'<text x="{_n(x)}%" y="{height - 7}" text-anchor="{_anchor(x)}">{text}</text>')
    head.append("</g>")
    # Y labels sit inside the plot, so they are drawn after the series (see y_labels) to stay readable.
    y_labels = ['<g class="op-chart__yl" aria-hidden="true">']
    for tick in ticks[1:]:
        y = _n(PAD_TOP + plot_height - tick / top * plot_height - 3)
        y_labels.append(f'<text x="2" y="{y}">{escape(value_format(tick))}</text>')
    y_labels.append("</g>")
    return _Frame(plot_height, top, head, "".join(y_labels))


def _empty(height: int, label: str) -> Markup:
    """What a chart shows for a period without buckets."""
    return Markup(
        f'<svg xmlns="{SVG_NS}" class="op-chart op-chart--empty" width="100%" height="{height}" role="img" '
        f'aria-label="{escape(label)}: no data"><text x="50%" y="{height // 2}" text-anchor="middle">'
        "No data for this period</text></svg>"
    )


def _bucket(
    title: str, x: float, band: float, y: float | None, prev_y: float | None, height: int, plot_bottom: float
) -> str:
    """Hover target for one bucket: transparent full-height band, cursor line, dots; <title> is the tooltip.

    The dots and cursor are hidden by CSS until the band is hovered (no JS needed).
    """
    left = max(0.0, x - band / 2)
    right = min(100.0, x + band / 2)
    parts = [
        f'<g class="op-chart__bucket"><title>{escape(title)}</title>',
        f'<rect class="op-chart__hit" x="{_n(left)}%" y="0" width="{_n(right - left)}%" height="{height}" '
        'fill="transparent"/>',
        f'<line class="op-chart__cursor" x1="{_n(x)}%" x2="{_n(x)}%" y1="{PAD_TOP}" y2="{_n(plot_bottom)}"/>',
    ]
    if prev_y is not None:
        parts.append(
            f'<circle class="op-chart__dot op-chart__dot--prev" cx="{_n(x)}%" cy="{_n(prev_y)}" r="3"/>'
        )
    if y is not None:
        parts.append(f'<circle class="op-chart__dot" cx="{_n(x)}%" cy="{_n(y)}" r="3.5"/>')
    parts.append("</g>")
    return "".join(parts)


def _line_path(xs: Sequence[float], ys: Sequence[float]) -> str:
    """'M x y L x y …' in the plot's percent/pixel units."""
    pairs = enumerate(zip(xs, ys, strict=True))
    return "".join(f"{'M' if i == 0 else 'L'}{_n(x)} {_n(y)}" for i, (x, y) in pairs)


def line_chart(
    points: Sequence[Point],
    previous: Sequence[Point] | None = None,
    *,
    width: int = 720,
    height: int = 240,
    value_format: ValueFormat = compact_number,
    label: str = "Value",
    previous_label: str = "Previous period",
    whole_numbers: bool = True,
) -> Markup:
    """The main overview chart: current series as line + area, previous period dashed, one hover per bucket.

    `width` is the nominal width in px, used only to decide how many x labels fit (the SVG fills its
    container); `height` is the real height in px. `previous[i]` is compared with `points[i]`; extra
    previous buckets are ignored. `value_format` formats y ticks and tooltip values.
    """
    if not points:
        return _empty(height, label)
    prev = list(previous or ())[: len(points)]
    count = len(points)
    xs = [50.0] if count == 1 else [i / (count - 1) * 100 for i in range(count)]
    frame = _frame(
        points,
        prev,
        xs,
        kind="line",
        width=width,
        height=height,
        value_format=value_format,
        label=label,
        whole_numbers=whole_numbers,
    )
    ph, top = frame.plot_height, frame.top
    ys = [ph - _clean(p.value) / top * ph for p in points]
    prev_ys = [ph - _clean(p.value) / top * ph for p in prev]
    out = frame.head
    out.append(
        f'<svg class="op-chart__plot" x="0" y="{PAD_TOP}" width="100%" height="{_n(ph)}" '
        f'viewBox="0 0 100 {_n(ph)}" preserveAspectRatio="none" overflow="visible" aria-hidden="true">'
    )
    line = _line_path(xs, ys)
    out.append(f'<path class="op-chart__area" d="{line}L{_n(xs[-1])} {_n(ph)}L{_n(xs[0])} {_n(ph)}Z"/>')
    if len(prev_ys) > 1:
        out.append(
            f'<path class="op-chart__prev" d="{_line_path(xs[: len(prev_ys)], prev_ys)}" fill="none" '
            'vector-effect="non-scaling-stroke"/>'
        )
    out.append(f'<path class="op-chart__line" d="{line}" fill="none" vector-effect="non-scaling-stroke"/>')
    out.append("</svg>")
    out.append(frame.y_labels)
    band = 100.0 if count == 1 else 100 / (count - 1)
    out.append('<g class="op-chart__buckets">')
    for i, point in enumerate(points):
        p = prev[i] if i < len(prev) else None
        out.append(
            _bucket(
                _tooltip(point, p, label, previous_label, value_format),
                xs[i],
                band,
                PAD_TOP + ys[i],
                PAD_TOP + prev_ys[i] if p is not None else None,
                height,
                PAD_TOP + ph,
            )
        )
    out.append("</g></svg>")
    return Markup("".join(out))


def bar_chart(
    points: Sequence[Point],
    previous: Sequence[Point] | None = None,
    *,
    width: int = 720,
    height: int = 240,
    value_format: ValueFormat = compact_number,
    label: str = "Value",
    previous_label: str = "Previous period",
    whole_numbers: bool = True,
) -> Markup:
    """The revenue variant of `line_chart`: one bar per bucket, the previous period as a dashed outline."""
    if not points:
        return _empty(height, label)
    prev = list(previous or ())[: len(points)]
    count = len(points)
    band = 100 / count
    centers = [(i + 0.5) * band for i in range(count)]
    frame = _frame(
        points,
        prev,
        centers,
        kind="bars",
        width=width,
        height=height,
        value_format=value_format,
        label=label,
        whole_numbers=whole_numbers,
    )
    ph, top = frame.plot_height, frame.top
    out = frame.head
    out.append(
        f'<svg class="op-chart__plot" x="0" y="{PAD_TOP}" width="100%" height="{_n(ph)}" '
        f'viewBox="0 0 100 {_n(ph)}" preserveAspectRatio="none" overflow="visible" aria-hidden="true">'
    )
    # Bars take 70% of their band and previous outlines 84%, so both read as one bucket.
    for i, before in enumerate(prev):
        h = _clean(before.value) / top * ph
        out.append(
            f'<rect class="op-chart__prevbar" x="{_n(centers[i] - band * 0.42)}" y="{_n(ph - h)}" '
            f'width="{_n(band * 0.84)}" height="{_n(h)}" fill="none" vector-effect="non-scaling-stroke"/>'
        )
    for i, point in enumerate(points):
        h = _clean(point.value) / top * ph
        out.append(
            f'<rect class="op-chart__bar" x="{_n(centers[i] - band * 0.35)}" y="{_n(ph - h)}" '
            f'width="{_n(band * 0.7)}" height="{_n(h)}"/>'
        )
    out.append("</svg>")
    out.append(frame.y_labels)
    out.append('<g class="op-chart__buckets">')
    for i, point in enumerate(points):
        p = prev[i] if i < len(prev) else None
        out.append(
            _bucket(
                _tooltip(point, p, label, previous_label, value_format),
                centers[i],
                band,
                None,
                None,
                height,
                PAD_TOP + ph,
            )
        )
    out.append("</g></svg>")
    return Markup("".join(out))


def sparkline(values: Sequence[float], *, width: int = 96, height: int = 28) -> Markup:
    """A tiny decorative trend line (aria-hidden: the card next to it carries the numbers)."""
    clean = [_clean(v) for v in values]
    head = (
        f'<svg xmlns="{SVG_NS}" class="op-spark" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
    )
    if len(clean) < 2:
        return Markup(head + "</svg>")
    high = max(clean) or 1.0
    # 2 px inside the box so the stroke is not clipped at the top and bottom.
    inner = height - 4
    xs = [i / (len(clean) - 1) * width for i in range(len(clean))]
    ys = [2 + inner - v / high * inner for v in clean]
    return Markup(
        f'{head}<path class="op-spark__line" d="{_line_path(xs, ys)}" fill="none" '
        'vector-effect="non-scaling-stroke"/></svg>'
    )
