"""Bar charts drawn on the server as inline SVG: nothing to load, nothing from the internet.

Every bar carries its series, label and exact value as data attributes, and a tooltip, so
the figures can be read back by a person hovering, a screen reader, or a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2f6db5", "#e08a1e", "#3a9d5d", "#c0392b", "#8e5ea2", "#5d6d7e")
FONT = "font-family='system-ui, sans-serif' font-size='12'"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    color: str = PALETTE[0]


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _figure(chart_id: str, title: str, caption: str, svg: str, legend: Sequence[Series]) -> str:
    keys = "".join(
        f"<li><span class='swatch' style='background:{_attr(s.color)}'></span>{escape(s.name)}</li>"
        for s in legend
    )
    legend_html = f"<ul class='legend'>{keys}</ul>" if len(legend) > 1 else ""
    return (
        f"<figure class='chart' id='chart-{_attr(chart_id)}' data-chart='{_attr(chart_id)}'>"
        f"<h3>{escape(title)}</h3>{svg}{legend_html}"
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _empty(chart_id: str, title: str, caption: str) -> str:
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='640' height='40' viewBox='0 0 640 40' "
        f"role='img' aria-label='{_attr(title)}: no data yet'>"
        f"<text x='8' y='24' {FONT} fill='#666'>No data yet</text></svg>"
    )
    return _figure(chart_id, title, caption, svg, [])


def _svg(title: str, width: float, height: float, parts: Sequence[str]) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{_attr(title)}'>"
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _top(series: Sequence[Series]) -> int:
    """The largest value of any series (1 when all are zero), the full length of a bar."""
    return max((max(s.values, default=0) for s in series), default=0) or 1


def _bar(
    x: float,
    y: float,
    width: float,
    height: float,
    series: Series,
    label: str,
    value: int,
    shown: str,
) -> str:
    return (
        f"<rect class='bar' x='{x:.1f}' y='{y:.1f}' width='{max(width, 0):.1f}' "
        f"height='{max(height, 0):.1f}' fill='{_attr(series.color)}' "
        f"data-series='{_attr(series.name)}' data-label='{_attr(label)}' data-value='{value}'>"
        f"<title>{escape(label)} · {escape(series.name)}: {escape(shown)}</title></rect>"
    )


def horizontal_bar_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    formatter: Callable[[int], str],
    caption: str,
) -> str:
    """One row per label, one bar per series in each row, the value written beside it."""
    if not labels or not any(any(s.values) for s in series):
        return _empty(chart_id, title, caption)
    label_width, plot_width, value_width = 190, 330, 120
    bar_height, gap = 16, 10
    row_height = bar_height * len(series) + gap
    width = label_width + plot_width + value_width
    height = row_height * len(labels) + gap
    top = _top(series)
    parts = []
    for row, label in enumerate(labels):
        y0 = gap + row * row_height
        parts.append(
            f"<text x='{label_width - 8}' y='{y0 + bar_height * len(series) / 2 + 4:.1f}' "
            f"text-anchor='end' {FONT}>{escape(_short(label))}<title>{escape(label)}</title></text>"
        )
        for index, one in enumerate(series):
            value = max(one.values[row], 0)
            bar_width = plot_width * value / top
            y = y0 + index * bar_height
            shown = formatter(value)
            parts.append(
                _bar(label_width, y + 1, bar_width, bar_height - 2, one, label, value, shown)
            )
            parts.append(
                f"<text x='{label_width + bar_width + 4:.1f}' y='{y + bar_height - 4}' "
                f"{FONT} fill='#333'>{escape(shown)}</text>"
            )
    svg = _svg(title, width, height, parts)
    return _figure(chart_id, title, caption, svg, series)


def column_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    formatter: Callable[[int], str],
    caption: str,
) -> str:
    """One group of columns per label (e.g. per month), one column per series."""
    if not labels or not any(any(s.values) for s in series):
        return _empty(chart_id, title, caption)
    column_width, gap, plot_height, axis = 18, 26, 180, 40
    group_width = column_width * len(series) + gap
    left = 90
    width = max(left + group_width * len(labels) + gap, 320)
    height = plot_height + axis + 10
    top = _top(series)
    parts = [
        f"<line x1='{left}' y1='{plot_height + 10}' x2='{width}' y2='{plot_height + 10}' "
        f"stroke='#999'/>",
        f"<text x='{left - 6}' y='16' text-anchor='end' {FONT}>{escape(formatter(top))}</text>",
        f"<text x='{left - 6}' y='{plot_height + 10}' text-anchor='end' {FONT}>0</text>",
    ]
    for column, label in enumerate(labels):
        x0 = left + gap + column * group_width
        for index, one in enumerate(series):
            value = max(one.values[column], 0)
            bar_height = plot_height * value / top
            parts.append(
                _bar(
                    x0 + index * column_width,
                    plot_height + 10 - bar_height,
                    column_width - 2,
                    bar_height,
                    one,
                    label,
                    value,
                    formatter(value),
                )
            )
        parts.append(
            f"<text x='{x0 + (group_width - gap) / 2:.1f}' y='{plot_height + 28}' "
            f"text-anchor='middle' {FONT}>{escape(label)}</text>"
        )
    svg = _svg(title, width, height, parts)
    return _figure(chart_id, title, caption, svg, series)
