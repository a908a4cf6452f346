"""`/audit/`: the audit events, newest first, paged by keyset through `events.queries`."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from events import queries
from events.audit import AUDIT_EVENTS
from events.filters import EventFilter

PAGE_SIZE = 50


def audit_filter() -> EventFilter:
    """Every audit event still kept (their retention is longer than the filter's default)."""
    since = timezone.now() - settings.EVENTSITE_AUDIT_RETENTION - timedelta(days=1)
    return EventFilter.model_validate(
        {"event": {"name": sorted(AUDIT_EVENTS)}, "occurred": {"since": since}}
    )


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("page")
    page = None
    error = None
    if token:
        try:
            page = queries.next_page(token)
        except queries.InvalidPageToken:
            error = "That page link is no longer valid; showing the newest events."
    if page is None:
        page = queries.first_page(audit_filter(), limit=PAGE_SIZE)
    context = {
        "events": page.events,
        "total": page.total,
        "next_token": page.next_token,
        "error": error,
    }
    # htmx "load more" swaps in the next rows only; without JavaScript the link loads a page.
    template = "events/audit.html#rows" if request.htmx and page and not error else None
    return render(request, template or "events/audit.html", context)
