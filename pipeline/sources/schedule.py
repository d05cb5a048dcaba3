"""Intervals written as "30s", "5m", "1h", "1d" (or combined, "1h30m"), and the failure backoff."""

from __future__ import annotations

import re

from pipeline.sources.errors import InvalidSource

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
MIN_EVERY, MAX_EVERY = 1, 366 * 86400


def parse_every(text: str) -> int:
    """Seconds in an interval such as "5m"; a clear InvalidSource for anything else."""
    compact = (text or "").strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise InvalidSource(f"bad interval {text!r}: use a number with s, m, h or d, e.g. 30s, 5m, 1h, 1d, 1h30m")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if not MIN_EVERY <= seconds <= MAX_EVERY:
        raise InvalidSource(f"bad interval {text!r}: must be between {MIN_EVERY}s and {MAX_EVERY // 86400}d")
    return seconds


def format_every(seconds: int) -> str:
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out) or "0s"


def backoff_delay(every: int, failures: int, cap: int) -> int:
    """Seconds until the next try: the interval while healthy, then doubling per consecutive
    failure (2x, 4x, ...) up to the cap. A cap below the interval never shortens it: backing
    off must not poll more often than the schedule does."""
    if failures <= 0:
        return every
    ceiling = max(cap, every)
    # Bounded shift: 2**failures would grow without limit for a source failing for months.
    return min(every << min(failures, 40), ceiling)
