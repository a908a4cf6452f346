"""What the feed shows beside its rows: filter chips with readable names, the event-name picker's
options, and the chart of counts by event (each bar a filter link)."""

from __future__ import annotations

from django.http import QueryDict

from events import page_queries, rollups, schema, severity, volume
from events.audit import AUDIT_EVENTS
from events.filters import EventFilter, name_matches
from events.forms import FeedFilterSet

MAX_NAME_OPTIONS = 400
TOP_NAMES = 6
# Parameters that are the feed's filters, with the words the page uses for them.
CHIP_PARAMS = {
    "event": "event",
    "exclude": "not",
    "resource": "resource",
    "label": "label",
    "related": "related",
    "role": "role",
}
# Chips whose values are resource ids: they show the resource's name (the id on hover).
RESOURCE_CHIPS = ("resource", "related")


def without(params: QueryDict, *names: str) -> QueryDict:
    out = params.copy()
    for name in names:
        out.pop(name, None)
    return out


def url(path: str, params: QueryDict) -> str:
    """This page (the feed, or the audit log) with other parameters."""
    query = params.urlencode()
    return path + (f"?{query}" if query else "")


def chips(path: str, params: QueryDict) -> list[dict]:
    """Each active filter value with the URL that drops it, and a name for resource ids."""
    ids = {
        value.strip()
        for name in RESOURCE_CHIPS
        for value in params.getlist(name)[:50]
        if value.strip() and not value.strip().endswith("*")
    }
    names = {
        rid: schema.resource_name(labels)
        for rid, labels in page_queries.resource_labels(sorted(ids)).items()
    }
    out = []
    for name, word in CHIP_PARAMS.items():
        for value in params.getlist(name):
            if not value.strip():
                continue
            rest = without(params, "after")
            rest.setlist(name, [v for v in params.getlist(name) if v != value])
            shown = names.get(value.strip(), "") if name in RESOURCE_CHIPS else ""
            out.append(
                {
                    "name": name,
                    "word": word,
                    "value": value,
                    "label": shown if shown and shown != value.strip() else "",
                    "remove": url(path, rest),
                }
            )
    return out


def name_options(filterset: FeedFilterSet) -> list[dict]:
    """Every dotted prefix of the names seen in the window, with counts (reference §7.2)."""
    counts: dict[str, int] = {}
    for row in _range_counts(filterset):
        name, count = row["value"], row["count"]
        if (name in AUDIT_EVENTS) != (filterset.scope == "audit"):
            continue  # the audit trail has its own page, and only it
        counts[name] = counts.get(name, 0) + count
        parts = name.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth]) + ".*"
            counts[prefix] = counts.get(prefix, 0) + count
    picked = set(filterset.values("event"))
    for value in picked:
        counts.setdefault(value, 0)
    options = [
        {
            "value": value,
            "count": count,
            "depth": value.count(".") - (1 if value.endswith(".*") else 0),
            "prefix": value.endswith(".*"),
            "picked": value in picked,
        }
        for value, count in counts.items()
    ]
    # A tree order: each prefix just before the names under it.
    options.sort(key=lambda o: o["value"].removesuffix("*"))
    if len(options) > MAX_NAME_OPTIONS:
        options = [o for o in options if o["picked"] or o["prefix"]][:MAX_NAME_OPTIONS]
    return options


def top_names(
    event_filter: EventFilter,
    filterset: FeedFilterSet,
    *,
    path: str,
    params: QueryDict,
    defer: bool = True,
) -> dict | None:
    """The most frequent event names matching the page, as bars that filter the feed to one.

    When the filter constrains only time and names, the picker's counts (cached, from the
    rollups) hold the answer. Otherwise counting means a scan as long as the histogram's; with
    `defer` the page gets `{"deferred": True}` and loads the chart afterwards (`names` view), so
    the rows never wait for it.
    """
    if rollups.answerable(event_filter) and not event_filter.distinct:
        rows = [
            r
            for r in _range_counts(filterset)
            if name_matches(event_filter.event, r["value"])
            and (r["value"] in AUDIT_EVENTS) == (filterset.scope == "audit")
        ]
    elif defer:
        return {"deferred": True}
    else:
        since, until = filterset.bounds()
        rows = volume.count_by_event(event_filter, window_key=volume.window_key(since, until, None))
    if len(rows) < 2:
        return None  # one name: the rows say it all
    top = rows[:TOP_NAMES]
    peak = top[0]["count"]
    base = without(params, "after", "event")
    bars = []
    for row in top:
        link = base.copy()
        link.setlist("event", [row["value"]])
        bars.append(
            {
                "name": row["value"],
                "count": row["count"],
                "width": max(1.0, 100.0 * row["count"] / peak),
                "severity": severity.of_name(row["value"]).value,
                "url": url(path, link),
            }
        )
    return {"bars": bars, "names": len(rows), "others": sum(r["count"] for r in rows[TOP_NAMES:])}


def _range_counts(filterset: FeedFilterSet) -> list[dict]:
    """Counts by name over the window alone (what the picker shows), cached briefly."""
    since, until = filterset.bounds()
    preset = None if filterset.is_custom else filterset.form.cleaned_data.get("range") or "24h"
    return volume.count_by_event(
        filterset.range_filter(), window_key=volume.window_key(since, until, preset)
    )
