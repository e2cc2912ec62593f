"""Inline SVG line charts for the report: no plotting library, one self-contained HTML file.

A chart is a stack of panels sharing one time axis, with the phase boundaries drawn as dashed
vertical lines across every panel. Missing samples (None) break a line instead of bridging it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Final

WIDTH: Final = 1000
PANEL_HEIGHT: Final = 150
LEFT: Final = 60
RIGHT: Final = 20
TOP: Final = 26
GAP: Final = 44  # between panels: room for a panel's title
PHASE_LABELS_HEIGHT: Final = 34  # two rows of phase names, alternating, so short phases fit

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: Sequence[Point]
    step: bool = False  # hold each value until the next sample (states, not rates)


@dataclass(frozen=True)
class Panel:
    title: str
    series: Sequence[Series]
    #: Tick labels instead of numbers, e.g. {0: "closed", 1: "half-open", 2: "open"}.
    y_labels: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Boundary:
    x: float
    label: str


def render(panels: Sequence[Panel], boundaries: Sequence[Boundary], x_max: float) -> str:
    """One <svg> element: the panels top to bottom, then the x axis in seconds."""
    x_max = max(x_max, 1.0)
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(x: float) -> float:
        return LEFT + plot_width * min(max(x, 0.0), x_max) / x_max

    height = PHASE_LABELS_HEIGHT + len(panels) * (PANEL_HEIGHT + GAP) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">'
    ]
    for index, boundary in enumerate(boundaries):  # phase names along the top
        x, y = x_of(boundary.x) + 3, 12 if index % 2 == 0 else 26
        parts.append(f'<text x="{x:.1f}" y="{y}" fill="#444">{escape(boundary.label)}</text>')
    top = PHASE_LABELS_HEIGHT
    for panel in panels:
        parts.append(_panel(panel, top + TOP, x_of, boundaries))
        top += PANEL_HEIGHT + GAP
    axis_y = top - GAP + TOP + 14  # just below the last panel
    for tick in _ticks(x_max):
        parts.append(
            f'<text x="{x_of(tick):.1f}" y="{axis_y}" text-anchor="middle" fill="#444">'
            f"{tick:g} s</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _panel(
    panel: Panel, top: float, x_of: Callable[[float], float], boundaries: Sequence[Boundary]
) -> str:
    bottom = top + PANEL_HEIGHT
    values = [y for s in panel.series for _, y in s.points if y is not None]
    y_max = max(panel.y_labels) if panel.y_labels else _nice_max(max(values, default=0.0))
    y_max = max(y_max, 1e-9)

    def y_of(y: float) -> float:
        return bottom - PANEL_HEIGHT * min(max(y, 0.0), y_max) / y_max

    parts = [
        f'<text x="{LEFT}" y="{top - 8}" font-size="13" font-weight="bold">'
        f"{escape(panel.title)}</text>",
        f'<rect x="{LEFT}" y="{top}" width="{WIDTH - LEFT - RIGHT}" height="{PANEL_HEIGHT}" '
        'fill="#fafafa" stroke="#ccc"/>',
    ]
    ticks: dict[float, str] = (
        {float(value): label for value, label in panel.y_labels.items()}
        if panel.y_labels
        else {0.0: "0", y_max / 2: f"{y_max / 2:g}", y_max: f"{y_max:g}"}
    )
    for value, label in ticks.items():
        parts.append(_y_tick(y_of(value), label))
    for boundary in boundaries:
        x = x_of(boundary.x)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
            'stroke="#888" stroke-dasharray="4 3"/>'
        )
    for series in panel.series:
        for run in _runs(series):
            if len(run) == 1:  # a lone sample between gaps: a dot, or it would not show
                x, y = run[0]
                parts.append(
                    f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="2" fill="{series.color}"/>'
                )
                continue
            points = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in run)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{series.color}" '
                'stroke-width="1.6"/>'
            )
    legend_x = WIDTH - RIGHT - 8
    for series in reversed(panel.series):  # right-aligned legend above the panel
        text = escape(series.label)
        parts.append(
            f'<text x="{legend_x}" y="{top - 8}" text-anchor="end" '
            f'fill="{series.color}">{text}</text>'
        )
        legend_x -= 7 * len(series.label) + 18
    return "\n".join(parts)


def _y_tick(y: float, label: str) -> str:
    return (
        f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e4e4e4"/>'
        f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{escape(label)}</text>'
    )


def _runs(series: Series) -> list[list[tuple[float, float]]]:
    """Consecutive non-missing points; a step series gets a corner before each change."""
    runs: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in series.points:
        if y is None:
            if current:
                runs.append(current)
            current = []
            continue
        if series.step and current and current[-1][1] != y:
            current.append((x, current[-1][1]))
        current.append((x, y))
    if current:
        runs.append(current)
    return runs


def _nice_max(value: float) -> float:
    """The next 1, 2 or 5 times a power of ten at or above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _ticks(x_max: float) -> list[float]:
    step = next(s for s in (5, 10, 15, 30, 60, 120, 300, 600) if x_max / s <= 12)
    return [float(t) for t in range(0, int(x_max) + 1, step)]
