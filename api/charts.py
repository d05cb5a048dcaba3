"""Time-series charts drawn as inline SVG on the server: no chart library, no script needed."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass
class Point:
    at: datetime
    value: float
    count: int = 0  # items behind the value; drawn as faint volume bars


@dataclass
class Marker:
    at: datetime
    label: str


W, H = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40


def aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def _time_label(t: datetime, span: timedelta) -> str:
    return t.strftime("%H:%M" if span <= timedelta(days=2) else "%b %d")


def sentiment_svg(points: list[Point], alerts: list[Marker], title: str) -> str:
    """Mean sentiment (-1..1) over time, item volume behind it, each alert a red marked line."""
    return time_chart_svg(points, alerts, title, (-1.0, 1.0), "mean sentiment", "{:+.1f}", "alert")


def counts_svg(
    points: list[Point],
    markers: list[Marker],
    title: str,
    y_label: str,
    marker_kind: str,
    count_noun: str = "items",
    x_range: tuple[datetime, datetime] | None = None,
) -> str:
    top = max((p.value for p in points), default=0)
    return time_chart_svg(
        points, markers, title, (0.0, float(max(4, top))), y_label, "{:.0f}", marker_kind, count_noun, x_range
    )


def time_chart_svg(
    points: list[Point],
    alerts: list[Marker],
    title: str,
    y_range: tuple[float, float],
    y_label: str,
    fmt: str = "{:.1f}",
    marker_kind: str = "alert",
    count_noun: str = "items",
    x_range: tuple[datetime, datetime] | None = None,
) -> str:
    """A line of `points` over time, volume bars behind it, and each marker as a red line."""
    name = html.escape(title)
    if not points:
        return (
            f'<svg class="chart empty" role="img" aria-label="{name}: no data" viewBox="0 0 {W} 60" '
            f'width="{W}" height="60"><text x="{W / 2}" y="34" text-anchor="middle">no data yet</text></svg>'
        )
    points = sorted(points, key=lambda p: aware(p.at))
    times = [aware(p.at) for p in points] + [aware(a.at) for a in alerts]
    t0, t1 = (aware(x_range[0]), aware(x_range[1])) if x_range else (min(times), max(times))
    if t1 == t0:
        t0, t1 = t0 - timedelta(hours=1), t1 + timedelta(hours=1)
    span = t1 - t0
    lo, hi = y_range
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + plot_w * ((aware(t) - t0) / span)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg class="chart" role="img" aria-label="{name}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{name}</title>'
    ]
    most = max((p.count for p in points), default=0)
    if most:
        bar_w = min(24.0, max(2.0, plot_w / max(len(points), 1) * 0.6))
        for p in points:
            bar_h = plot_h * 0.35 * p.count / most
            left = min(max(x(p.at) - bar_w / 2, LEFT), W - RIGHT - bar_w)  # stays inside the plot
            out.append(
                f'<rect class="volume" x="{left:.1f}" y="{TOP + plot_h - bar_h:.1f}" '
                f'width="{bar_w:.1f}" height="{bar_h:.1f}"><title>{p.count} {count_noun}</title></rect>'
            )
    for v in _ticks(lo, hi):
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{fmt.format(v)}</text>'
        )
    for i in range(5):
        t = t0 + span * (i / 4)
        out.append(
            f'<text class="tick" x="{x(t):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">'
            f"{_time_label(t, span)}</text>"
        )
    if lo < 0 < hi:
        out.append(f'<line class="zero" x1="{LEFT}" x2="{W - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>')
    path = " ".join(f"{x(p.at):.1f},{y(p.value):.1f}" for p in points)
    out.append(f'<polyline class="series" fill="none" points="{path}"/>')
    for p in points:
        out.append(
            f'<circle class="point" cx="{x(p.at):.1f}" cy="{y(p.value):.1f}" r="2.5">'
            f"<title>{p.at:%Y-%m-%d %H:%M}: {fmt.format(p.value)} ({p.count} {count_noun})</title></circle>"
        )
    for a in alerts:
        ax = x(a.at)
        out.append(
            f'<g class="alert"><line x1="{ax:.1f}" x2="{ax:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>'
            f'<path d="M{ax - 6:.1f},{TOP} L{ax + 6:.1f},{TOP} L{ax:.1f},{TOP + 9} Z"/>'
            f"<title>{marker_kind} {a.at:%Y-%m-%d %H:%M}: {html.escape(a.label)}</title></g>"
        )
    legend = f"{html.escape(y_label)} · {len(alerts)} {marker_kind}(s)"
    out.append(f'<text class="axis" x="{LEFT}" y="{H - 6}">{legend}</text>')
    out.append("</svg>")
    return "".join(out)
