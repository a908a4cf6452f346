"""`/resources/<id>/`: what one resource is and what happened to it.

Everything is read from the resource rows through `events.page_queries`, newest first and
bounded: the timeline in keyset pages, counts and neighbours from the newest `SAMPLE` events.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from events import page_queries, schema, severity
from events.story import display_name, kind_of

PAGE = 50
SAMPLE = 2000  # events the counts and neighbours are taken from
NEIGHBOURS_FROM = 300  # of those, the newest this many give the related resources
MAX_NEIGHBOURS = 30
TOP = 12


@login_required
def resource(request: HttpRequest, resource_id: str) -> HttpResponse:
    before = _before(request.GET.get("before", ""))
    timeline = page_queries.resource_timeline(resource_id, before=before, limit=PAGE)
    more = None
    if len(timeline) == PAGE:
        last = timeline[-1].event
        more = "?" + urlencode({"before": f"{last.occurred.isoformat()},{last.id}"})
    context = {"resource_id": resource_id, "timeline": timeline, "more_url": more}
    if request.htmx and before is not None:
        return render(request, "resources/detail.html#timeline", context)

    latest = page_queries.resource_labels([resource_id]).get(resource_id)
    if latest is None:
        raise Http404("No stored event involves this resource.")
    sample = page_queries.resource_sample(resource_id, limit=SAMPLE)
    context.update(
        {
            "name": schema.resource_name(latest),
            "kind": kind_of(resource_id),
            "labels": sorted(
                (k, str(v))
                for k, v in latest.items()
                if k not in (schema.RESOURCE_ID, schema.RESOURCE_ROLE)
            ),
            "latest_primary": next((eid for eid, _, role in sample if role == ""), None),
            "roles": sorted({role for _, _, role in sample if role}),
            "counts": _counts(resource_id, sample),
            "sampled": len(sample),
            "sample_limit": SAMPLE,
            "neighbours": _neighbours(resource_id, sample),
        }
    )
    return render(request, "resources/detail.html", context)


def _before(value: str) -> tuple[datetime, uuid.UUID] | None:
    occurred, _, event_id = value.partition(",")
    try:
        return schema.parse_datetime(occurred), uuid.UUID(event_id)
    except ValueError:
        return None


def _counts(resource_id: str, sample: list[tuple[uuid.UUID, str, str]]) -> list[dict]:
    """Counts by event name in the sample, as bars linking to the feed filtered to them."""
    counts = Counter(name for _, name, _ in sample)
    primary = {name for _, name, role in sample if role == ""}
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    if not top:
        return []
    peak = top[0][1]
    out = []
    for name, count in top:
        param = "resource" if name in primary else "related"
        out.append(
            {
                "name": name,
                "count": count,
                "width": max(1.0, 100.0 * count / peak),
                "severity": severity.of_name(name).value,
                "url": "/events/?" + urlencode({param: resource_id, "event": name, "range": "7d"}),
            }
        )
    return out


def _neighbours(resource_id: str, sample: list[tuple[uuid.UUID, str, str]]) -> list[dict]:
    """Resources that appear in the same events, most frequent first."""
    ids = [eid for eid, _, _ in sample[:NEIGHBOURS_FROM]]
    seen: Counter[tuple[str, str]] = Counter()
    names: dict[str, str] = {}
    for rid, role, labels in page_queries.resources_alongside(ids):
        if rid == resource_id:
            continue
        seen[(rid, role)] += 1
        names.setdefault(rid, display_name({**labels, schema.RESOURCE_ROLE: role}))
    return [
        {"id": rid, "role": role or "resource", "name": names[rid], "count": n}
        for (rid, role), n in seen.most_common(MAX_NEIGHBOURS)
    ]
