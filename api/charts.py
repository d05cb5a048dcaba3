"""Chart specifications for the dashboard, drawn in the browser by plotly.js.

The server builds each chart as a plotly figure (a JSON object of traces and a layout); the page hands it to
plotly.js, which the app serves from the installed `plotly` package (see `plotly_js`), never from a CDN.
plotly.js gives legends, hover labels, date axes and responsive resizing that a hand-drawn SVG lacked.

Times go out as naive UTC strings: a date axis then shows them as they are, and a point at a bucket's start
sits exactly on the tick of that day or hour.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from pathlib import Path

# one colour per outcome, shared with the progress bars (app.css)
OUTCOMES = (  # (counter, legend name, colour)
    ("done", "indexed", "#1a7f4b"),
    ("unchanged", "unchanged", "#98a2b3"),
    ("skipped", "duplicates", "#e6a23c"),
    ("failed", "failed", "#c0262d"),
)
ACCENT, VOLUME, BAD, WARN = "#2f6fed", "#c7d7f7", "#c0262d", "#b25e09"
FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#1d2330"}


@dataclass
class Bucket:
    """Items of the jobs that finished in one time bucket, by outcome (the job counters' names)."""

    start: datetime
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Point:
    at: datetime
    value: float
    count: int = 0  # items behind the value, drawn as volume bars


@dataclass
class Marker:
    at: datetime
    label: str
    kind: str = "alert"  # the legend entry: "alert", or a job's final state
    y: float | None = None  # where on the value axis; None: the top of the plot


def aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _x(t: datetime) -> str:
    return aware(t).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(step: timedelta) -> float:
    return step.total_seconds() * 1000


def _tick_format(step: timedelta) -> str:
    return "%b %d" if step >= timedelta(days=1) else "%H:%M\n%b %d"


def _layout(step: timedelta, first: datetime, last: datetime, y_title: str) -> dict:
    # half a bucket of room on each side: the first and last bars are whole and the last date is not cut off
    half = step / 2
    return {
        "autosize": True,
        "height": 300,
        "margin": {"l": 56, "r": 56, "t": 8, "b": 8},
        "font": FONT,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "traceorder": "normal"},
        "xaxis": {
            "type": "date",
            "range": [_x(first - half), _x(last + half)],
            "tickformat": _tick_format(step),
            "hoverformat": "%Y-%m-%d %H:%M UTC",
            "automargin": True,
            "showgrid": False,
            "ticks": "outside",
        },
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "gridcolor": "#eef0f4", "automargin": True},
    }


def activity_figure(buckets: list[Bucket], jobs: list[Marker], step: timedelta) -> dict | None:
    """Items per bucket stacked by outcome (a partial job's failures show as the red part of its bar),
    and a marker over the bucket of each partial or failed job. None when there is nothing to draw."""
    if not buckets:
        return None
    buckets = sorted(buckets, key=lambda b: aware(b.start))
    xs = [_x(b.start) for b in buckets]
    data: list[dict] = [
        {
            "type": "bar",
            "name": name,
            "x": xs,
            "y": [b.counts.get(counter, 0) for b in buckets],
            "marker": {"color": colour},
            "width": _ms(step) * 0.8,
            "hovertemplate": f"%{{y}} {name}<extra></extra>",
        }
        for counter, name, colour in OUTCOMES
    ]
    # a job's marker floats just above its bucket's bar, not on its top edge where the bar would hide half of it
    lift = 0.08 * max((sum(b.counts.values()) for b in buckets), default=0)
    for kind, symbol, colour in (("partial", "triangle-down", WARN), ("failed", "x", BAD)):
        marked = [Marker(m.at, m.label, m.kind, (m.y or 0) + lift) for m in jobs if m.kind == kind]
        if marked:
            data.append(_markers(marked, f"{kind} job", symbol, colour))
    layout = _layout(step, buckets[0].start, buckets[-1].start, "items")
    layout["barmode"] = "stack"
    layout["bargap"] = 0.2
    return {"data": data, "layout": layout}


def sentiment_figure(points: list[Point], alerts: list[Marker], step: timedelta | None = None) -> dict | None:
    """Mean sentiment (-1..1) per bucket as a line, the items behind it as low bars on an axis of their own (on
    the right), each alert a red marker with a dashed line down the plot. None when there is nothing to draw.

    The bars take the base axis and the line the overlaying one, because plotly draws an overlaying axis's
    traces on top: so the line stays in front of the bars."""
    if not points:
        return None
    points = sorted(points, key=lambda p: aware(p.at))
    step = step or _step_of([p.at for p in points])
    xs = [_x(p.at) for p in points]
    data: list[dict] = [
        {
            "type": "bar",
            "name": "items",
            "x": xs,
            "y": [p.count for p in points],
            "marker": {"color": VOLUME},
            "width": _ms(step) * 0.7,
            "hovertemplate": "%{y} items<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "mean sentiment",
            "x": xs,
            "y": [round(p.value, 4) for p in points],
            "yaxis": "y2",
            "line": {"color": ACCENT, "width": 2},
            "marker": {"size": 6},
            "hovertemplate": "sentiment %{y:+.2f}<extra></extra>",
        },
    ]
    if alerts:
        alert = _markers([Marker(a.at, a.label, a.kind, 1.0) for a in alerts], "alert", "triangle-down", BAD)
        data.append({**alert, "yaxis": "y2"})
    first = min([points[0].at, *(a.at for a in alerts)], key=aware)
    last = max([points[-1].at, *(a.at for a in alerts)], key=aware)
    layout = _layout(step, first, last, "items")
    most = max(p.count for p in points) or 1
    # the bars fill the lowest 40% of the plot; whole numbers only on their axis
    layout["yaxis"].update(
        side="right",
        range=[0, most * 2.5],
        tickmode="array",
        tickvals=sorted({0, most // 2, most}),
        showgrid=False,
    )
    layout["yaxis2"] = {
        "title": {"text": "mean sentiment"},
        "overlaying": "y",
        "side": "left",
        "range": [-1.05, 1.05],
        # set, or plotly lines an overlaying axis's ticks up with the base axis's (0.5 items) and labels them oddly
        "tickmode": "array",
        "tickvals": [-1, -0.5, 0, 0.5, 1],
        "gridcolor": "#eef0f4",
        "zeroline": True,
        "zerolinecolor": "#98a2b3",
        "automargin": True,
    }
    layout["shapes"] = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": _x(a.at),
            "x1": _x(a.at),
            "y0": 0,
            "y1": 1,
            "line": {"color": BAD, "width": 1.5, "dash": "dash"},
        }
        for a in alerts
    ]
    return {"data": data, "layout": layout}


def _markers(marked: list[Marker], name: str, symbol: str, colour: str) -> dict:
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": [_x(m.at) for m in marked],
        "y": [m.y for m in marked],
        "text": [m.label for m in marked],
        "marker": {"symbol": symbol, "size": 12, "color": colour},
        "hovertemplate": "%{text}<extra></extra>",
        "cliponaxis": False,
    }


def _step_of(times: list[datetime]) -> timedelta:
    gaps = [aware(b) - aware(a) for a, b in zip(times, times[1:], strict=False) if b != a]
    return min(gaps) if gaps else timedelta(days=1)


def plotly_file() -> Path:
    """plotly.js as the installed plotly package ships it (its package data)."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


@cache
def plotly_hash() -> str:
    """The installed plotly.min.js's content hash: it goes into the script's URL, so browsers may keep it for good."""
    return hashlib.sha256(plotly_file().read_bytes()).hexdigest()[:16]


@cache
def plotly_gzipped() -> bytes:
    """The script gzipped once per process (4.8 MB become about 1.5 MB on the wire), not once per request."""
    return gzip.compress(plotly_file().read_bytes(), compresslevel=6)


def plotly_url() -> str:
    return f"/vendor/plotly-{plotly_hash()}.min.js"
