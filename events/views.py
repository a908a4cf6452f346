"""The event pages: the feed (`/events/`), one event (`/events/<id>/`), the filter inputs'
suggestions and the export of the current filter."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django_htmx.middleware import HtmxDetails
from pydantic import ValidationError

from events import export, facets, histogram, queries, severity, story
from events import suggest as suggestions
from events.audit import AUDIT_EVENTS
from events.filters import EventFilter
from events.forms import HIDDEN_BY_DEFAULT, MAX_VALUE_LENGTH, RANGE_LABELS, FeedFilterSet
from events.personal.models import SavedView
from eventsite.links import public_url

PAGE_SIZE = 50


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@login_required
def feed(request: HtmxHttpRequest, scope: str | None = None) -> HttpResponse:
    """The filterable, live event feed; htmx gets the `rows` or `main` partial.

    `scope="audit"` is the same page for the audit trail (`/audit/`).
    """
    now = timezone.now()
    filterset, event_filter, errors = _read_filters(request, now=now, scope=scope)

    page, page_error = None, None
    if token := request.GET.get("after"):
        try:
            page = queries.next_page(token)
        except queries.InvalidPageToken:
            page_error = "That “load more” link has expired or was altered; showing the newest."
    chart = None
    partial = request.htmx and not request.htmx.history_restore_request
    if not (partial and request.htmx.target != "feed-main"):
        base = facets.without(request.GET, "after", "range", "since", "until").urlencode()
        chart = histogram.build(
            event_filter,
            zoom_url=request.path + "?" + (base + "&" if base else ""),
            clip_end=not filterset.is_relative,
        )
    if page is None:
        # The histogram counts exactly the rows' filter over the window (it only leaves out
        # stretches without events), so its buckets add up to the total.
        total = chart["total"] if chart else None
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
            "histogram": chart,
            "top_names": facets.top_names(
                event_filter, filterset, path=request.path, params=request.GET
            )
            if page.total
            else None,
            "name_options": facets.name_options(filterset),
            "chips": facets.chips(request.path, request.GET),
            "ranges": RANGE_LABELS.items(),
            "api_url": public_url("/api", request=request),
            "ws_query": _ws_query(request.GET, scope),
            # A window that ended in the past gets no new rows: the page shows no live state.
            "live": filterset.is_relative or event_filter.occurred.until > now,
            "scope": scope,
            "feed_url": request.path,
            "query": facets.without(request.GET, "after").urlencode(),
            "share_url": public_url(
                facets.url(request.path, facets.without(request.GET, "after")), request=request
            ),
            "window": (event_filter.occurred.since, event_filter.occurred.until),
            "has_any": bool(page.events) or _any_stored(scope),
            "example_id": uuid.uuid4(),
            "export_limit": export.LIMIT,
            "saved_views": SavedView.objects.filter(owner=request.user),
        }
    )
    template = "events/feed.html"
    if request.htmx and request.htmx.target == "feed-main":
        template += "#main"
    return render(request, template, context)


def _read_filters(
    request: HttpRequest, *, now: datetime, scope: str | None
) -> tuple[FeedFilterSet, EventFilter, list[tuple[str, str]]]:
    """The page's FilterSet, its `EventFilter` and the errors to show (the valid parameters
    still narrow the feed)."""
    filterset = FeedFilterSet(request.GET, now=now, scope=scope)
    filterset.is_valid()
    errors = _errors(filterset)
    try:
        event_filter = filterset.event_filter()
    except ValidationError as exc:
        errors.append(("filter", "; ".join(e["msg"] for e in exc.errors(include_url=False))))
        event_filter = EventFilter.model_validate(
            {"occurred": dict(zip(("since", "until"), filterset.bounds(), strict=True))}
        )
    return filterset, event_filter, errors


def _ws_query(params: QueryDict, scope: str | None) -> str:
    query = facets.without(params, "after")
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
            "title": story.title(event),
            "severity": severity.of_event(event.event, event.resource).value,
            "tab": "raw" if request.GET.get("tab") == "raw" else "details",
            "story": story.story(event),
            "wire": event.to_wire(),
            "share_url": public_url(request.path, request=request),
        },
    )


@login_required
def names(request: HttpRequest, scope: str | None = None) -> HttpResponse:
    """The feed's chart of counts by event, loaded after the page when it needs a scan."""
    filterset, event_filter, errors = _read_filters(request, now=timezone.now(), scope=scope)
    feed_path = request.path.removesuffix("names/")
    chart = None
    if not errors:
        chart = facets.top_names(
            event_filter, filterset, path=feed_path, params=request.GET, defer=False
        )
    return render(request, "events/feed.html#top-names", {"top_names": chart})


@login_required
def suggest(request: HttpRequest) -> HttpResponse:
    """`<option>`s for the filter inputs (`field` = resource, related or label), for htmx to put
    in their `<datalist>`; the typed text comes as the input's own parameter."""
    field = request.GET.get("field", "")
    if field not in suggestions.FIELDS:
        return HttpResponse(
            f"field must be one of {', '.join(suggestions.FIELDS)}.",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    filterset = FeedFilterSet(request.GET, now=timezone.now())
    filterset.is_valid()
    since, until = filterset.bounds()
    typed = request.GET.get(field, "")[:MAX_VALUE_LENGTH]
    options = suggestions.suggestions(field, typed, since=since, until=until)
    return render(request, "events/_suggestions.html", {"options": options})


@login_required
def export_events(request: HttpRequest, scope: str | None = None) -> HttpResponse:
    """The current filter's events as CSV or JSON Lines (`format`), newest first, streamed."""
    kind = request.GET.get("format", "csv")
    if kind not in export.FORMATS:
        return HttpResponse(
            "format must be csv or jsonl.", status=400, content_type="text/plain; charset=utf-8"
        )
    _, event_filter, errors = _read_filters(request, now=timezone.now(), scope=scope)
    if errors:
        text = "; ".join(f"{field}: {message}" for field, message in errors)
        return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        export.stream(event_filter, kind=kind), content_type=export.FORMATS[kind]
    )
    name = "audit" if scope == "audit" else "events"
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{kind}"'
    response["X-Export-Limit"] = str(export.LIMIT)
    return response


# --- helpers -------------------------------------------------------------------------------------


def _errors(filterset: FeedFilterSet) -> list[tuple[str, str]]:
    return [
        (field, message)
        for field, messages in filterset.form.errors.items()
        for message in messages
    ]


def _more_url(request: HttpRequest, page: queries.Page) -> str | None:
    if not page.next_token:
        return None
    params = facets.without(request.GET, "after")
    params["after"] = page.next_token
    return facets.url(request.path, params)
