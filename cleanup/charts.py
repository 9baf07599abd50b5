"""The Retention page's plots as SVG: marks placed here, coloured by the admin theme (plot.svg)."""

import math
from datetime import timedelta

from django.utils import timezone

# The plot area inside the 760 x 210 picture; the axes' texts go in the margins around it.
LEFT, TOP, PLOT_W, PLOT_H = 84, 12, 662, 154
GEOMETRY = {"left": LEFT, "right": LEFT + PLOT_W, "bottom": TOP + PLOT_H}
GEOMETRY |= {"middle": TOP + PLOT_H // 2, "center": LEFT + PLOT_W // 2}


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten >= `value`; 2 at least (a whole middle line)."""
    value = max(value, 2)
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if value <= step * power))


def nice_duration_ceiling(seconds: float) -> float:
    """The smallest round duration (seconds) at or above `seconds`: 2 min ... 1 day, then days."""
    steps = [120, 600, 1800, 3600, 2 * 3600, 4 * 3600, 6 * 3600, 12 * 3600, 86400]
    return float(next((s for s in steps if seconds <= s), 86400 * math.ceil(seconds / 86400)))


def time_series(points, *, since, until, label="{:,.0f}".format, ceiling=nice_ceiling, step=None):
    """(time, value) points as bars `step` seconds wide, or a line; y from 0 to `ceiling(max)`."""
    span = (until - since).total_seconds() or 1.0
    top = ceiling(max((v for _, v in points), default=0))
    # A date at each local midnight (every 6 hours over two days or less).
    every = timedelta(hours=24 if until - since > timedelta(days=2) else 6)
    first = timezone.localtime(since).replace(minute=0, second=0, microsecond=0)
    first += every - timedelta(hours=first.hour) % every
    ticks = [first + every * n for n in range((until - first) // every + 1)]

    def x(moment):
        return f"{LEFT + max(0.0, min(1.0, (moment - since).total_seconds() / span)) * PLOT_W:.1f}"

    def y(value):
        return f"{TOP + PLOT_H - (value / top) * PLOT_H:.1f}"

    return {
        "g": GEOMETRY,
        "grid": [(y(top * f), label(top * f)) for f in (0, 0.5, 1)],
        "ticks": [(x(at), at) for at in ticks],
        "tick_format": "Y-m-d" if every.days else "Y-m-d H:i",
        "zone": timezone.localtime(until).tzname(),
        "points": points,
        "bars": bool(step),
        # A bar per nonzero point, or a dot per point (the polyline goes through them).
        "marks": [
            (x(at), y(v), f"{v / top * PLOT_H:.1f}", at, label(v))
            for at, v in points
            if v or not step
        ],
        "width": f"{max(PLOT_W * step / span - 0.6, 0.8) if step else 2:.1f}",
    }
