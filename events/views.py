"""The event pages: the feed (`/events/`) and one event (`/events/<id>/`)."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html_join
from django_htmx.middleware import HtmxDetails
from pydantic import ValidationError

from events import queries, schema, volume
from events.audit import AUDIT_EVENTS
from events.filters import EventFilter
from events.forms import HIDDEN_BY_DEFAULT, RANGE_LABELS, FeedFilterSet
from eventsite.links import public_url

PAGE_SIZE = 50
MAX_NAME_OPTIONS = 400
# Parameters that are the feed's filters, with the words the page uses for them.
CHIP_PARAMS = {
    "event": "event",
    "exclude": "not",
    "resource": "resource",
    "label": "label",
    "related": "related",
    "role": "role",
}


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
def feed(request: HtmxHttpRequest, scope: str | None = None) -> HttpResponse:
    """The filterable, live event feed; htmx gets the `rows` or `main` partial.

    `scope="audit"` is the same page for the audit trail (`/audit/`).
    """
    now = timezone.now()
    filterset = FeedFilterSet(request.GET, now=now, scope=scope)
    filterset.is_valid()  # errors are shown; the valid parameters still narrow the feed
    errors = _errors(filterset)
    try:
        event_filter = filterset.event_filter()
    except ValidationError as exc:
        errors.append(("filter", "; ".join(e["msg"] for e in exc.errors(include_url=False))))
        event_filter = EventFilter.model_validate(
            {"occurred": dict(zip(("since", "until"), filterset.bounds(), strict=True))}
        )

    page, page_error = None, None
    if token := request.GET.get("after"):
        try:
            page = queries.next_page(token)
        except queries.InvalidPageToken:
            page_error = "That “load more” link has expired or was altered; showing the newest."
    histogram = None
    partial = request.htmx and not request.htmx.history_restore_request
    if not (partial and request.htmx.target != "feed-main"):
        histogram = _histogram(request, event_filter)
    if page is None:
        # The histogram covers exactly the window, so its buckets add up to the total.
        total = sum(histogram["counts"]) if histogram else None
        page = queries.first_page(event_filter, limit=PAGE_SIZE, total=total)

    context = {
        "filterset": filterset,
        "page": page,
        "events": page.events,
        "more_url": _more_url(request, page),
        "now": now,
    }
    if partial and request.htmx.target != "feed-main":
        return render(request, "events/feed.html#rows", context)
    context.update(
        {
            "errors": errors + ([("after", page_error)] if page_error else []),
            "histogram": histogram,
            "name_options": _name_options(filterset),
            "chips": _chips(request.path, request.GET),
            "ranges": RANGE_LABELS.items(),
            "api_url": public_url("/api", request=request),
            "ws_query": _ws_query(request.GET, scope),
            "scope": scope,
            "feed_url": request.path,
            "window": (event_filter.occurred.since, event_filter.occurred.until),
            "has_any": bool(page.events) or _any_stored(scope),
            "example_id": uuid.uuid4(),
        }
    )
    template = "events/feed.html"
    if request.htmx and request.htmx.target == "feed-main":
        template += "#main"
    return render(request, template, context)


def _ws_query(params: QueryDict, scope: str | None) -> str:
    query = _without(params, "after")
    if scope:
        query["scope"] = scope
    return query.urlencode()


def _any_stored(scope: str | None) -> bool:
    if scope == "audit":
        return queries.any_named(sorted(AUDIT_EVENTS))
    return queries.any_named(HIDDEN_BY_DEFAULT, exclude=True)


@login_required
def detail(request: HttpRequest, event_id: uuid.UUID) -> HttpResponse:
    event = queries.event(event_id)
    if event is None:
        raise Http404("No event with this id is stored.")
    return render(
        request,
        "events/detail.html",
        {
            "event": event,
            "tab": "raw" if request.GET.get("tab") == "raw" else "details",
            "previous": queries.event(event.follows) if event.follows else None,
            "followers": queries.followers(event),
            "same_resource": queries.same_resource(event),
            "wire": event.to_wire(),
        },
    )


# --- helpers -------------------------------------------------------------------------------------


def _errors(filterset: FeedFilterSet) -> list[tuple[str, str]]:
    return [
        (field, message)
        for field, messages in filterset.form.errors.items()
        for message in messages
    ]


def _without(params: QueryDict, *names: str) -> QueryDict:
    out = params.copy()
    for name in names:
        out.pop(name, None)
    return out


def _feed_url(path: str, params: QueryDict) -> str:
    """This page (the feed, or the audit log) with other parameters."""
    query = params.urlencode()
    return path + (f"?{query}" if query else "")


def _more_url(request: HttpRequest, page: queries.Page) -> str | None:
    if not page.next_token:
        return None
    params = _without(request.GET, "after")
    params["after"] = page.next_token
    return _feed_url(request.path, params)


def _chips(path: str, params: QueryDict) -> list[dict]:
    """Each active filter value with the URL that drops it."""
    chips = []
    for name, word in CHIP_PARAMS.items():
        for value in params.getlist(name):
            if not value.strip():
                continue
            rest = _without(params, "after")
            rest.setlist(name, [v for v in params.getlist(name) if v != value])
            chips.append(
                {"name": name, "word": word, "value": value, "remove": _feed_url(path, rest)}
            )
    return chips


def _time_unit(since: datetime, until: datetime) -> tuple[queries.TimeUnit, float]:
    """Prefect's rule (reference §7.2): minutes up to 1000 of them, then hours, then days."""
    minutes = (until - since).total_seconds() / 60
    if minutes <= 1000:
        return "minute", 1.0
    if minutes / 60 <= 1000:
        return "hour", 1.0
    days = minutes / 1440
    return "day", float(max(1, math.ceil(days / 1000)))


def _histogram(request: HttpRequest, event_filter: EventFilter) -> dict | None:
    since, until = event_filter.occurred.since, event_filter.occurred.until
    unit, interval = _time_unit(since, until)
    try:
        buckets = volume.count_by_time(event_filter, unit=unit, interval=interval)
    except queries.TooManyBuckets:
        return None
    if not buckets:
        return None
    peak = max(b["count"] for b in buckets)
    base = _without(request.GET, "after", "range", "since", "until").urlencode()
    prefix = request.path + "?" + (base + "&" if base else "")
    bars = []
    for i, b in enumerate(buckets):
        start, end = schema.isoformat(b["start"]), schema.isoformat(b["end"])
        height = 0.0 if not b["count"] else max(0.6, 38.0 * b["count"] / peak)
        bars.append(
            (
                prefix + urlencode({"since": start, "until": end}),
                start,
                f"{b['count']:,}",
                "" if b["count"] == 1 else "s",
                i,
                i,
                f"{40.0 - height:.2f}",
                f"{height:.2f}",
            )
        )
    # Up to a thousand bars: one format_html_join is ~30x quicker than a template loop, and
    # it escapes every value just the same.
    svg = format_html_join(
        "",
        '<a href="{}"><title>{} · {} event{}</title><rect class="hit" x="{}" y="0" width="1" '
        'height="40"/><rect class="bar" x="{}" y="{}" width="0.82" height="{}"/></a>',
        bars,
    )
    return {
        "svg": svg,
        "counts": [b["count"] for b in buckets],
        "n": len(bars),
        "peak": peak,
        "unit": unit if interval == 1 else f"{interval:g} {unit}s",
    }


def _name_options(filterset: FeedFilterSet) -> list[dict]:
    """Every dotted prefix of the names seen in the window, with counts (reference §7.2)."""
    counts: dict[str, int] = {}
    exact: set[str] = set()
    since, until = filterset.bounds()
    preset = None if filterset.is_custom else filterset.form.cleaned_data.get("range") or "24h"
    rows = volume.count_by_event(
        filterset.range_filter(), window_key=volume.window_key(since, until, preset)
    )
    for row in rows:
        name, count = row["value"], row["count"]
        if (name in AUDIT_EVENTS) != (filterset.scope == "audit"):
            continue  # the audit trail has its own page, and only it
        exact.add(name)
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
