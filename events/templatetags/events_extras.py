"""Presentation helpers for events: labels, previews, times. Filters return plain text that the
template autoescapes; what returns markup (`middle`, a row's related badges) builds it with
format_html, which escapes every value, and joins only such pieces. Nothing marks user data safe."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import quote

import orjson
from django import template
from django.conf import settings
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from events import schema, severity, story

register = template.Library()

PREVIEW_CHARS = 200
_SEPARATORS = re.compile(r"[.\-_]+")


@register.filter
def event_label(name: str) -> str:
    """`prefect.flow-run.Completed` → "Flow Run Completed" (Prefect's timeline label)."""
    for prefix in ("prefect.", "prefect-cloud."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    words = _SEPARATORS.sub(" ", name).split()
    return " ".join(w[:1].upper() + w[1:] for w in words) or name


@register.filter
def resource_name(labels: dict) -> str:
    return schema.resource_name(labels or {})


# Prefect's state-change payloads restate what the row's name and severity already say.
STATE_PAYLOAD_KEYS = ("intended", "initial_state", "validated_state")


@register.filter
def payload_preview(payload) -> str:
    """One line of compact JSON, cut short: enough to recognise the event at a glance."""
    if isinstance(payload, dict) and any(k in payload for k in STATE_PAYLOAD_KEYS):
        payload = {k: v for k, v in payload.items() if k not in STATE_PAYLOAD_KEYS}
    if not payload:
        return ""
    # Serialising a 1 MB payload costs about a millisecond; cutting first would need a walk.
    text = orjson.dumps(payload).decode()
    if len(text) > PREVIEW_CHARS:
        return text[: PREVIEW_CHARS - 1] + "…"
    return text


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def related_by_role(related: list[dict]) -> list[dict]:
    """Related resources grouped by role, in first-seen order: [{role, resources: [...]}]."""
    groups: dict[str, list[dict]] = {}
    for r in related or []:
        groups.setdefault(r.get(schema.RESOURCE_ROLE, ""), []).append(
            {"id": r.get(schema.RESOURCE_ID, ""), "name": story.display_name(r), "labels": r}
        )
    return [{"role": role, "resources": items} for role, items in groups.items()]


@register.filter
def iso(value: datetime | None) -> str:
    return schema.isoformat(value) if value else ""


@register.filter
def absolute(value: datetime | None) -> str:
    if not value:
        return ""
    text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{text} UTC"


@register.filter
def ago(value: datetime | None) -> str:
    """A short relative time ("12s ago", "3 min ago", "in 5 min"); feed.js keeps it fresh."""
    if not value:
        return ""
    seconds = (timezone.now() - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 5:
        return "just now"
    if seconds < 60:
        text = f"{int(seconds)}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        text = f"{int(seconds // 3600)} h"
    else:
        text = f"{int(seconds // 86400)} d"
    return f"in {text}" if future else f"{text} ago"


@register.filter
def clock(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%H:%M:%S") if value else ""


@register.filter
def labels_without_id(labels: dict) -> list[tuple[str, str]]:
    """Labels other than the id and role (shown separately), sorted by key."""
    skip = (schema.RESOURCE_ID, schema.RESOURCE_ROLE)
    return sorted((k, str(v)) for k, v in (labels or {}).items() if k not in skip)


# What a Prefect user scans a row for first; other roles follow in the order they came.
ROLE_ORDER = {"flow": 0, "deployment": 1, "work-pool": 2, "work-queue": 3, "tag": 9}


@register.filter
def badges(related: list[dict], limit: int = 6) -> dict:
    """Related resources grouped by role, whole names, the first `limit` of them.

    `{"groups": [{"role", "items": [{"id", "name", "named", "href", "title"}]}], "more": n}`:
    flows and deployments first, tags last (they are many and say least). Names and ids come
    clipped for display; `href` filters the feed to the resource.
    """
    groups: dict[str, list[dict]] = {}
    feed = _urls(get_script_prefix())["feed"]
    for r in related or []:
        role = clip(r.get(schema.RESOURCE_ROLE, ""), 40)
        rid, name = r.get(schema.RESOURCE_ID, ""), story.display_name(r)
        named = name != rid
        groups.setdefault(role, []).append(
            {
                "id": rid,
                "name": clip(name, 120) if named else middle(clip(rid, 300)),
                "named": named,
                "href": event_page(rid) or f"{feed}?related={quote(rid, safe='')}",
                "title": f"{role}: {clip(rid, 300)}",
            }
        )
    ordered = sorted(groups.items(), key=lambda g: ROLE_ORDER.get(g[0], 5))
    shown, left = [], limit
    for role, items in ordered:
        if left <= 0:
            break
        shown.append({"role": role, "items": items[:left]})
        left -= len(items[:left])
    total = sum(len(items) for items in groups.values())
    return {"groups": shown, "more": total - (limit - left)}


@register.filter
def event_page(resource_id: str) -> str:
    """The event page of a `prefect.event.<id>` resource (an event named as a resource), or ""."""
    if not resource_id.startswith("prefect.event."):
        return ""
    try:
        event_id = uuid.UUID(resource_id.removeprefix("prefect.event."))
    except ValueError:
        return ""
    return f"{_urls(get_script_prefix())['detail']}{event_id}/"


@register.filter
def row(event) -> dict:
    """Everything one feed row shows, prepared here: the row template only places it.

    The feed renders up to a thousand rows a minute (pages, "load more", live pushes); one filter
    call per row costs a fraction of a dozen filters with arguments and `{% url %}` tags.
    """
    name = schema.resource_name(event.resource or {})
    rid = event.resource_id
    urls = _urls(get_script_prefix())
    return {
        "severity": severity.of_event(event.event, event.resource).value,
        "occurred": iso(event.occurred),
        "received": iso(event.received),
        "absolute": absolute(event.occurred),
        "clock": clock(event.occurred),
        "ago": ago(event.occurred),
        "label": clip(event_label(event.event), 120),
        "name": clip(event.event, 200),
        "name_title": clip(event.event, 300),
        "detail_url": f"{urls['detail']}{event.id}/",
        "resource_url": f"{urls['resource']}{quote(rid, safe=URL_SAFE)}/",
        "resource_title": clip(rid, 300),
        "resource": clip(name, 120) if name != rid else middle(clip(rid, 300)),
        "related": related_html(badges(event.related)),
        "preview": payload_preview(event.payload),
    }


def related_html(rel: dict) -> str:
    """The row's related badges as markup (format_html escapes every value): role, then its
    resources; the role stays on one line with its first resource."""
    parts = []
    for group in rel["groups"]:
        links = [
            format_html(
                '<a class="badge{}" href="{}" title="{}">{}</a>',
                "" if b["named"] else " unnamed",
                b["href"],
                b["title"],
                b["name"],
            )
            for b in group["items"]
        ]
        first = format_html(
            '<span class="nobr"><span class="role">{}</span> {}</span>', group["role"], links[0]
        )
        parts.append(
            format_html('<span class="rel">{} {}</span>', first, mark_safe(" ".join(links[1:])))
        )
    if rel["more"]:
        parts.append(format_html('<span class="badge more">+{}</span>', rel["more"]))
    return mark_safe(" ".join(parts))


# What `reverse()` leaves unquoted in a path argument (django.urls.resolvers: RFC 3986 sub-delims).
URL_SAFE = "/~:@!$&'()*+,;="


@lru_cache(maxsize=4)
def _urls(script_prefix: str) -> dict[str, str]:
    """The rows' URL prefixes, reversed once (reverse() per row and badge cost more than the
    rest of the row)."""
    sample = "00000000-0000-0000-0000-000000000000"
    return {
        "feed": reverse("events:feed"),
        "detail": reverse("events:detail", args=[sample]).removesuffix(f"{sample}/"),
        "resource": reverse("resources:detail", args=["x"]).removesuffix("x/"),
    }


@register.filter
def clip(value, limit: int) -> str:
    """`value` cut to `limit` characters with an ellipsis (truncatechars, without its cost)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def severity_of(event) -> str:
    """The event's severity (`events.severity`): failed, cancelled, running, completed, other."""
    return severity.of_event(event.event, event.resource).value


@register.filter
def thousands(value: int) -> str:
    return f"{value:,}"


@register.filter
def about(value: int) -> str:
    """An estimated count, rounded as a person would say it: "about 400k", "about 1.2M"."""
    if value >= 1_000_000:
        return f"about {value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"about {round(value / 1000):,}k"
    if value >= 1000:
        return f"about {value / 1000:.1f}k".replace(".0k", "k")
    return f"about {value:,}"


@register.filter
def input_value(value: datetime | None) -> str:
    """A UTC datetime as a `datetime-local` input value."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value else ""


@register.filter
def axis_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%b %d %H:%M") if value else ""


@register.simple_tag
def middle(value, tail: int = 10) -> str:
    """A long id that, when its box is too narrow, loses its middle rather than its end.

    CSS cannot cut a string in the middle, so the tail is its own span that never shrinks; the
    head ends in an ellipsis. Copying the text still copies the whole id.
    """
    text = str(value)
    if len(text) <= tail * 2:
        return format_html('<span class="mid">{}</span>', text)
    return format_html(
        '<span class="mid" title="{}"><span class="mid-head">{}</span>'
        '<span class="mid-tail">{}</span></span>',
        text,
        text[:-tail],
        text[-tail:],
    )


@register.simple_tag
def event_retention() -> str:
    """How long events are kept (`EVENTSITE_EVENT_RETENTION`), in words: "7 days", "36 hours"."""
    return duration_words(settings.EVENTSITE_EVENT_RETENTION)


def duration_words(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


@register.filter
def timeline(told: story.Story, of) -> list[story.Step]:
    """The detail page's story as one list in time order (see `events.story.Story.timeline`)."""
    return told.timeline(of)


@register.filter
def kind(resource_id: str) -> str:
    """ "flow run" for `prefect.flow-run.…`: what kind of thing a resource id names."""
    return story.kind_of(resource_id or "")


@register.filter
def event_kind(name: str) -> str:
    """ "task run" for `prefect.task-run.Completed`: what kind of thing an event is about."""
    return story.event_kind(name or "")
