"""Bar charts drawn on the server as inline SVG: nothing to load, nothing from the internet.

This module only lays a chart out (where each bar and label goes); ``templates/chart.html``
draws it, autoescaped like every page. Every bar carries its series, label and exact value
as data attributes, and a tooltip, so the figures can be read back by a person hovering, a
screen reader, or a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

PALETTE = ("#2f6db5", "#e08a1e", "#3a9d5d", "#c0392b", "#8e5ea2", "#5d6d7e")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    color: str = PALETTE[0]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: Series
    label: str
    value: int
    shown: str  # the value as the chart writes it


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"
    fill: str = ""
    title: str = ""  # the whole text, when ``text`` is shortened


@dataclass(frozen=True)
class Rule:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Chart:
    """One chart, laid out; ``width`` 0: no data yet."""

    chart_id: str
    title: str
    caption: str
    width: float = 0
    height: float = 0
    bars: list[Bar] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    series: Sequence[Series] = ()

    @property
    def empty(self) -> bool:
        return not self.bars

    @property
    def legend(self) -> Sequence[Series]:
        """The series named under the chart: only when there are several."""
        return self.series if len(self.series) > 1 else ()


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


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
) -> Bar:
    return Bar(
        round(x, 1),
        round(y, 1),
        round(max(width, 0), 1),
        round(max(height, 0), 1),
        series,
        label,
        value,
        shown,
    )


def _no_data(labels: Sequence[str], series: Sequence[Series]) -> bool:
    return not labels or not any(any(s.values) for s in series)


def horizontal_bar_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    formatter: Callable[[int], str],
    caption: str,
) -> Chart:
    """One row per label, one bar per series in each row, the value written beside it."""
    if _no_data(labels, series):
        return Chart(chart_id, title, caption)
    label_width, plot_width, value_width = 190, 330, 120
    bar_height, gap = 16, 10
    row_height = bar_height * len(series) + gap
    top = _top(series)
    bars, texts = [], []
    for row, label in enumerate(labels):
        y0 = gap + row * row_height
        middle = round(y0 + bar_height * len(series) / 2 + 4, 1)
        short = _short(label)
        texts.append(
            Text(label_width - 8, middle, short, "end", title=label if short != label else "")
        )
        for index, one in enumerate(series):
            value = max(one.values[row], 0)
            bar_width = plot_width * value / top
            y = y0 + index * bar_height
            shown = formatter(value)
            bars.append(
                _bar(label_width, y + 1, bar_width, bar_height - 2, one, label, value, shown)
            )
            texts.append(
                Text(round(label_width + bar_width + 4, 1), y + bar_height - 4, shown, fill="#333")
            )
    return Chart(
        chart_id,
        title,
        caption,
        width=label_width + plot_width + value_width,
        height=row_height * len(labels) + gap,
        bars=bars,
        texts=texts,
        series=series,
    )


def column_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    formatter: Callable[[int], str],
    caption: str,
) -> Chart:
    """One group of columns per label (e.g. per month), one column per series."""
    if _no_data(labels, series):
        return Chart(chart_id, title, caption)
    column_width, gap, plot_height, axis = 18, 26, 180, 40
    group_width = column_width * len(series) + gap
    left = 90
    width = max(left + group_width * len(labels) + gap, 320)
    top = _top(series)
    base = plot_height + 10
    texts = [
        Text(left - 6, 16, formatter(top), "end"),
        Text(left - 6, base, "0", "end"),
    ]
    bars = []
    for column, label in enumerate(labels):
        x0 = left + gap + column * group_width
        for index, one in enumerate(series):
            value = max(one.values[column], 0)
            bar_height = plot_height * value / top
            x = x0 + index * column_width
            shown = formatter(value)
            bars.append(
                _bar(x, base - bar_height, column_width - 2, bar_height, one, label, value, shown)
            )
        texts.append(
            Text(round(x0 + (group_width - gap) / 2, 1), plot_height + 28, label, "middle")
        )
    return Chart(
        chart_id,
        title,
        caption,
        width=width,
        height=plot_height + axis + 10,
        bars=bars,
        texts=texts,
        rules=[Rule(left, base, width, base)],
        series=series,
    )
