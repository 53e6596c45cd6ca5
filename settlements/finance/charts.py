"""Charts as server-rendered SVG: no script, no library, nothing from another host (the page's
Content-Security-Policy allows neither). Colours come from classes in finance/finance.css, so the
SVG carries no style attribute. Each chart is an image with a title and a description for screen
readers; the table beside it holds the same figures.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# The drawing's own units (its viewBox): it is scaled to its box's width, never wider (CSS
# `width: 100%; height: auto`), so a phone shows the whole chart. Text sizes are set in these units
# by finance.css, larger on narrow screens so that they stay about 11-12 px once scaled down.
WIDTH, HEIGHT = 480, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 10, 14, 30


def _nice_max(value: float) -> int:
    """The top of an axis with four gridlines a round step apart (1, 2 or 5 x 10^n): 22 -> 40, 3 -> 4."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if 4 * step * factor >= value:
                return 4 * step * factor
        step *= 10


def _svg(label_id: str, title: str, description: str, body: list[str], css: str) -> SafeString:
    head = format_html(
        '<svg class="chart {}" viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
        css, WIDTH, HEIGHT, label_id, label_id, label_id, title, label_id, description,
    )
    return mark_safe(head + "".join(body) + "</svg>")


def _grid(top_value: int, suffix: str = "") -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        value = top_value * i / 4
        y = TOP + plot_h - plot_h * i / 4
        text = f"{value:,.0f}{suffix}"
        parts.append(format_html('<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>', LEFT, WIDTH - RIGHT, f"{y:.1f}", f"{y:.1f}"))
        parts.append(format_html('<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>', LEFT - 6, f"{y + 4:.1f}", text))
    return parts


def _x_labels(labels: Sequence[str], slot: float) -> list[str]:
    """Every few labels counted back from the last (today's is always shown); on a narrow screen
    only every other one of those (the class `minor` is hidden there) when there are many."""
    every = max(1, round(len(labels) / 8))
    narrow_every = every * 2 if len(labels) > 8 else every
    last = len(labels) - 1
    parts = []
    for i, label in enumerate(labels):
        if (last - i) % every:
            continue
        css = "axis x" if (last - i) % narrow_every == 0 else "axis x minor"
        x, anchor = LEFT + slot * (i + 0.5), "middle"
        if i == last and len(labels) > 8:  # a narrow last slot: ends at the edge instead of past it
            x, anchor = WIDTH - 2, "end"
        parts.append(format_html(
            '<text class="{}" x="{}" y="{}" text-anchor="{}">{}</text>', css, f"{x:.1f}", HEIGHT - 10, anchor, label
        ))
    return parts


@dataclass(frozen=True)
class Segment:
    name: str  # accepted, failed, open: the CSS class bar-<name>
    value: int


@dataclass(frozen=True)
class Column:
    label: str  # shown under the axis
    tooltip: str  # the whole column, in words
    segments: Sequence[Segment]


def stacked_bars(*, label_id: str, title: str, description: str, columns: Sequence[Column]) -> SafeString:
    """Columns of stacked segments, bottom to top in the order given."""
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    top_value = _nice_max(max((sum(s.value for s in c.segments) for c in columns), default=0))
    slot = plot_w / max(1, len(columns))
    bar_w = max(2.0, slot * 0.72)
    body = _grid(top_value)
    for i, column in enumerate(columns):
        x = LEFT + slot * i + (slot - bar_w) / 2
        y = TOP + plot_h
        rects = []
        for segment in column.segments:
            h = plot_h * segment.value / top_value
            if h <= 0:
                continue
            y -= h
            rects.append(format_html(
                '<rect class="bar-{}" x="{}" y="{}" width="{}" height="{}"/>',
                segment.name, f"{x:.1f}", f"{y:.1f}", f"{bar_w:.1f}", f"{h:.1f}",
            ))
        # The hover target spans the whole slot, so that a day without payments has a tooltip too.
        body.append(format_html(
            '<g class="column"><title>{}</title><rect class="hit" x="{}" y="{}" width="{}" height="{}"/>{}</g>',
            column.tooltip, f"{LEFT + slot * i:.1f}", TOP, f"{slot:.1f}", plot_h, mark_safe("".join(rects)),
        ))
    body += _x_labels([c.label for c in columns], slot)
    body.append(format_html('<line class="baseline" x1="{}" x2="{}" y1="{}" y2="{}"/>', LEFT, WIDTH - RIGHT, TOP + plot_h, TOP + plot_h))
    return _svg(label_id, title, description, body, "chart-bars")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Decimal | None]  # per label; None: nothing to show that day


def rate_lines(*, label_id: str, title: str, description: str, labels: Sequence[str], series: Sequence[Series]) -> SafeString:
    """Percentages (0-100) as one line per series, with a dot per day and its value on hover.
    A day without a value breaks the line."""
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    slot = plot_w / max(1, len(labels))
    body = _grid(100, " %")
    for index, line in enumerate(series):
        css = f"series-{index % 6}"
        runs: list[list[str]] = [[]]
        dots = []
        for i, value in enumerate(line.points):
            if value is None:
                runs.append([])
                continue
            x, y = LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * float(value) / 100
            runs[-1].append(f"{x:.1f},{y:.1f}")
            dots.append(format_html(
                '<circle class="dot {}" cx="{}" cy="{}" r="3"><title>{} {}: {} %</title></circle>',
                css, f"{x:.1f}", f"{y:.1f}", line.name, labels[i], value,
            ))
        for run in runs:
            if len(run) > 1:
                body.append(format_html('<polyline class="line {}" points="{}"/>', css, " ".join(run)))
        body += dots
    body += _x_labels(labels, slot)
    return _svg(label_id, title, description, body, "chart-lines")


def legend(items: Sequence[tuple[str, str]]) -> SafeString:
    """(CSS class, label) pairs as an HTML list under a chart."""
    return format_html(
        '<ul class="legend">{}</ul>',
        mark_safe("".join(format_html('<li><span class="swatch {}" aria-hidden="true"></span>{}</li>', css, escape(label))
                          for css, label in items)),
    )
