"""Small time-series plots as inline SVG, drawn on the server for the admin's Retention page.

No JavaScript and no plotting library: a few rectangles, a polyline and text. Colours come from
the admin's own CSS variables (`--link-fg`, `--hairline-color`, `--body-fg`) and text and axes
use `currentColor`, so the plots follow the admin's light or dark theme (prefers-color-scheme,
or the theme switch) with no colours of their own.
"""

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 210
LEFT, RIGHT, TOP, BOTTOM = 84, 14, 12, 44
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
INK = 'fill="currentColor" font-size="11"'


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (at least 2, so the
    middle gridline is a whole number)."""
    if value <= 2:
        return 2.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if value <= step * power))


# Round durations for a plot's top: minutes, hours, days.
_DURATIONS = [120, 600, 1800, 3600, 2 * 3600, 4 * 3600, 6 * 3600, 12 * 3600, 86400]


def nice_duration_ceiling(seconds: float) -> float:
    """The smallest round duration (seconds) at or above `seconds`: 2 min ... 1 day, then days."""
    return float(next((s for s in _DURATIONS if seconds <= s), 86400 * math.ceil(seconds / 86400)))


def time_series(
    *,
    title: str,
    y_title: str,
    since: datetime,
    until: datetime,
    points: Sequence[tuple[datetime, float]],
    kind: str,
    label: Callable[[float], str] = lambda v: f"{v:,.0f}",
    ceiling: Callable[[float], float] = nice_ceiling,
    step: timedelta | None = None,
) -> SafeString:
    """`kind` "bars" (one bar per `step`) or "line"; the y axis runs from 0 to
    `ceiling(largest value)`, labelled with `label`."""
    span = (until - since).total_seconds() or 1.0
    top = ceiling(max((v for _, v in points), default=0))

    def x(moment):
        return LEFT + max(0.0, min(1.0, (moment - since).total_seconds() / span)) * PLOT_W

    def y(value):
        return TOP + PLOT_H - (value / top) * PLOT_H

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" class="retention-plot" '
        'style="width:100%;max-width:760px;height:auto;color:var(--body-fg, currentColor)">',
        f"<title>{escape(title)}</title>",
        *_y_axis(top, label, y_title),
        *_x_axis(since, until, x),
    ]
    if not points:
        parts.append(
            f'<text x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H / 2}" text-anchor="middle" {INK} '
            'opacity="0.7">no run recorded in this period</text>'
        )
    width = max(PLOT_W * (step.total_seconds() / span) - 0.6, 0.8) if step else 2
    parts += _marks(points, kind, x, y, label, width)
    # Safe: every text that comes from outside this function went through escape().
    return mark_safe("".join([*parts, "</svg>"]))


def _marks(points, kind, x, y, label, width) -> list[str]:
    """A bar per nonzero point, or a dot per point and the polyline through them."""
    parts = []
    for moment, value in points:
        tip = f"<title>{escape(_when(moment))}: {escape(label(value))}</title>"
        if kind == "bars" and value:
            parts.append(
                f'<rect x="{x(moment):.1f}" y="{y(value):.1f}" width="{width:.1f}" '
                f'height="{TOP + PLOT_H - y(value):.1f}" style="fill:var(--link-fg)">{tip}</rect>'
            )
        elif kind == "line":
            parts.append(
                f'<circle cx="{x(moment):.1f}" cy="{y(value):.1f}" r="2.2" '
                f'style="fill:var(--link-fg)">{tip}</circle>'
            )
    if kind == "line" and points:
        path = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke-width="2" '
            'style="stroke:var(--link-fg, currentColor)"/>'
        )
    return parts


def _y_axis(top, label, y_title):
    parts = [
        f'<text transform="translate(14 {TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle" '
        f"{INK}>{escape(y_title)}</text>"
    ]
    for fraction in (0, 0.5, 1):
        level = TOP + PLOT_H - fraction * PLOT_H
        stroke = "currentColor" if fraction == 0 else "var(--hairline-color, currentColor)"
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{level:.1f}" y2="{level:.1f}" '
            f'style="stroke:{stroke}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" {INK}>'
            f"{escape(label(top * fraction))}</text>"
        )
    return parts


def _x_axis(since, until, x):
    """A tick and a date at each local midnight (every 6 hours over two days or less), and the
    axis title with the time zone."""
    hours = 24 if until - since > timedelta(days=2) else 6
    tick = timezone.localtime(since).replace(minute=0, second=0, microsecond=0)
    tick += timedelta(hours=hours - tick.hour % hours)
    parts = []
    while tick <= until:
        shown = f"{tick:%Y-%m-%d}" if hours == 24 else f"{tick:%Y-%m-%d %H:%M}"
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{TOP + PLOT_H}" '
            f'y2="{TOP + PLOT_H + 4}" stroke="currentColor" stroke-width="1"/>'
            f'<text x="{x(tick):.1f}" y="{TOP + PLOT_H + 17}" text-anchor="middle" {INK}>'
            f"{shown}</text>"
        )
        tick += timedelta(hours=hours)
    zone = timezone.localtime(until).tzname()
    parts.append(
        f'<text x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 4}" text-anchor="middle" {INK}>'
        f"time ({escape(zone)})</text>"
    )
    return parts


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds")
