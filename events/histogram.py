"""The feed's histogram: events over time, stacked by severity, clipped to where the data is.

`build(...)` picks the bucket size (Prefect's rule), counts through `events.volume` (cached), cuts
the leading stretch where nothing happened (a 7-day view of two days of data shows two days) and
recounts finer when the cut allows, then draws an SVG: one link per non-empty bucket (it zooms in),
one rect per severity in it. Empty buckets draw nothing and cannot be clicked or focused; of the
bars, only one is in the tab order (arrow keys move between them, see static/js/pages.js).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.utils.html import format_html, format_html_join

from events import queries, schema, severity, volume
from events.filters import EventFilter

HEIGHT = 40.0  # the SVG's user units; CSS decides the pixels
TOP = 38.0  # the peak bar's height, leaving a sliver of air under the top border
MIN_SEGMENT = 1.4  # a severity with any events stays visible however tall the rest is
# A clipped histogram still spans at least this much, so one burst does not fill the width.
MIN_SPAN = timedelta(minutes=15)


def time_unit(since: datetime, until: datetime) -> tuple[queries.TimeUnit, float]:
    """Prefect's rule (reference §7.2): minutes up to 1000 of them, then hours, then days."""
    minutes = (until - since).total_seconds() / 60
    if minutes <= 1000:
        return "minute", 1.0
    if minutes / 60 <= 1000:
        return "hour", 1.0
    days = minutes / 1440
    return "day", float(max(1, math.ceil(days / 1000)))


def buckets(event_filter: EventFilter, *, clip_end: bool) -> tuple[list[dict], str, float]:
    """Counted buckets clipped to the data: (buckets, unit, interval). Empty when no events.

    The start is always clipped (nothing happened before the first event); the end only with
    `clip_end` (a window that ends now keeps its quiet end: "nothing since" is news).
    """
    since, until = event_filter.occurred.since, event_filter.occurred.until
    unit, interval = time_unit(since, until)
    counted = volume.count_by_time(event_filter, unit=unit, interval=interval)
    filled = [i for i, b in enumerate(counted) if b["count"]]
    if not filled:
        return [], unit, interval
    first, last = counted[filled[0]], counted[filled[-1]]
    lo = max(since, first["start"])
    hi = min(until, last["end"]) if clip_end else until
    if hi - lo < MIN_SPAN:
        lo = max(since, hi - MIN_SPAN)
        hi = min(until, lo + MIN_SPAN) if clip_end else hi
    finer = time_unit(lo, hi)
    if finer != (unit, interval):
        unit, interval = finer
        counted = volume.count_by_time(
            volume.within(event_filter, lo, hi), unit=unit, interval=interval
        )
    kept = [b for b in counted if b["end"] >= lo and b["start"] <= hi]
    # The finer buckets clip closer: drop their empty ends too, keeping MIN_SPAN.
    while len(kept) > 1 and not kept[0]["count"] and _span(kept[1:], clip_end, until) >= MIN_SPAN:
        kept.pop(0)
    while (
        clip_end
        and len(kept) > 1
        and not kept[-1]["count"]
        and _span(kept[:-1], clip_end, until) >= MIN_SPAN
    ):
        kept.pop()
    return kept, unit, interval


def _span(kept: list[dict], clip_end: bool, until: datetime) -> timedelta:
    return (kept[-1]["end"] if clip_end else until) - kept[0]["start"]


def _segments(counts: dict[severity.Severity, int], peak: int) -> list[tuple[str, float, float]]:
    """(severity, y, height) rects for one bar, bottom up in `severity.ORDER`."""
    heights = [
        (sev, max(MIN_SEGMENT, TOP * counts[sev] / peak) if counts[sev] else 0.0)
        for sev in severity.ORDER
    ]
    total = sum(h for _, h in heights)
    if total > TOP:  # the minimum heights pushed a tall bar over the top: shrink it to fit
        heights = [(sev, h * TOP / total) for sev, h in heights]
    out, y = [], HEIGHT
    for sev, h in heights:
        if h:
            y -= h
            out.append((sev.value, y, h))
    return out


def _readout(bucket: dict, unit: str) -> str:
    counts = bucket["severity"]
    parts = [f"{counts[s]:,} {s.label}" for s in severity.ORDER if counts[s] and s.value != "other"]
    total = bucket["count"]
    text = f"{schema.isoformat(bucket['start'])} · {total:,} event{'' if total == 1 else 's'}"
    return text + (f" ({', '.join(parts)})" if parts else "")


def build(event_filter: EventFilter, *, zoom_url: str, clip_end: bool) -> dict | None:
    """The histogram for the page, or None when nothing matched (or the range has too many
    buckets). `zoom_url` is the page's URL without its time parameters, ending in `?` or `&`."""
    try:
        counted, unit, interval = buckets(event_filter, clip_end=clip_end)
    except queries.TooManyBuckets:
        return None
    if not counted:
        return None
    peak = max(b["count"] for b in counted)
    bars = []
    focusable = next(i for i, b in enumerate(counted) if b["count"])
    for i, b in enumerate(counted):
        if not b["count"]:
            continue  # inert: no link, no rect, no tab stop
        start, end = schema.isoformat(b["start"]), schema.isoformat(b["end"])
        rects = format_html_join(
            "",
            '<rect class="seg s-{}" x="{}" y="{}" width="0.82" height="{}"/>',
            ((sev, i, f"{y:.2f}", f"{h:.2f}") for sev, y, h in _segments(b["severity"], peak)),
        )
        bars.append(
            format_html(
                '<a href="{}" tabindex="{}" data-start="{}" data-end="{}" data-counts="{}">'
                '<title>{}</title><rect class="hit" x="{}" y="0" width="1" height="40"/>{}</a>',
                zoom_url + urlencode({"since": start, "until": end}),
                "0" if i == focusable else "-1",
                start,
                end,
                ",".join(str(b["severity"][s]) for s in severity.ORDER),
                _readout(b, unit),
                i,
                rects,
            )
        )
    return {
        # Up to a thousand bars: format_html per bar is far quicker than a template loop, and
        # escapes every value just the same.
        "svg": format_html_join("", "{}", ((bar,) for bar in bars)),
        "counts": [b["count"] for b in counted],
        "total": sum(b["count"] for b in counted),
        "n": len(counted),
        "peak": peak,
        "since": max(event_filter.occurred.since, counted[0]["start"]),
        "until": min(event_filter.occurred.until, counted[-1]["end"]) if clip_end else None,
        "unit": unit if interval == 1 else f"{interval:g} {unit}s",
        "severities": [s.value for s in severity.ORDER],
    }
