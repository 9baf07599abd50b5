"""The Retention page's plots as server-side SVG (no JavaScript): this module places the marks;
admin/cleanup/plot.svg colours them from the admin's CSS variables (light or dark theme)."""

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.utils import timezone

WIDTH, HEIGHT = 760, 210
LEFT, RIGHT, TOP, BOTTOM = 84, 14, 12, 44
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
GEOMETRY = {
    "width": WIDTH,
    "height": HEIGHT,
    "left": LEFT,
    "right": LEFT + PLOT_W,
    "bottom": TOP + PLOT_H,
    "middle": TOP + PLOT_H / 2,
    "center": LEFT + PLOT_W / 2,
    "label_x": LEFT - 6,
}
# Round durations for a plot's top: 2 min ... 1 day.
_DURATIONS = [120, 600, 1800, 3600, 2 * 3600, 4 * 3600, 6 * 3600, 12 * 3600, 86400]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten >= `value`; 2 at least (a whole middle line)."""
    if value <= 2:
        return 2.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if value <= step * power))


def nice_duration_ceiling(seconds: float) -> float:
    """The smallest round duration (seconds) at or above `seconds`: 2 min ... 1 day, then days."""
    return float(next((s for s in _DURATIONS if seconds <= s), 86400 * math.ceil(seconds / 86400)))


def time_series(
    *,
    since: datetime,
    until: datetime,
    points: Sequence[tuple[datetime, float]],
    kind: str = "line",
    label: Callable[[float], str] = lambda v: f"{v:,.0f}",
    ceiling: Callable[[float], float] = nice_ceiling,
    step: timedelta | None = None,
) -> dict:
    """One plot: "bars" (`step` wide) or "line"; y from 0 to `ceiling(largest value)`."""
    span = (until - since).total_seconds() or 1.0
    top = ceiling(max((v for _, v in points), default=0))

    def x(moment):
        return f"{LEFT + max(0.0, min(1.0, (moment - since).total_seconds() / span)) * PLOT_W:.1f}"

    def y(value):
        return TOP + PLOT_H - (value / top) * PLOT_H

    return {
        "g": GEOMETRY,
        "grid": [
            (f"{y(top * f):.1f}", f"{y(top * f) + 4:.1f}", label(top * f)) for f in (0, 0.5, 1)
        ],
        "ticks": [(x(tick), shown) for tick, shown in _ticks(since, until)],
        "zone": timezone.localtime(until).tzname(),
        "points": points,
        "kind": kind,
        "marks": _marks(points, kind, x, y, label),
        "width": f"{max(PLOT_W * (step.total_seconds() / span) - 0.6, 0.8) if step else 2:.1f}",
    }


def _ticks(since, until):
    """A date at each local midnight (every 6 hours over two days or less)."""
    hours = 24 if until - since > timedelta(days=2) else 6
    tick = timezone.localtime(since).replace(minute=0, second=0, microsecond=0)
    tick += timedelta(hours=hours - tick.hour % hours)
    while tick <= until:
        yield tick, f"{tick:%Y-%m-%d}" if hours == 24 else f"{tick:%Y-%m-%d %H:%M}"
        tick += timedelta(hours=hours)


def _marks(points, kind, x, y, label) -> list[dict]:
    """A bar per nonzero point, or a dot per point (the polyline goes through them)."""
    return [
        {
            "x": x(at),
            "y": f"{y(v):.1f}",
            "height": f"{TOP + PLOT_H - y(v):.1f}",
            "tip": f"{timezone.localtime(at).isoformat(timespec='seconds')}: {label(v)}",
        }
        for at, v in points
        if kind == "line" or v
    ]
