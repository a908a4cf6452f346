"""Export of the feed's current filter as CSV or JSON Lines, streamed, at most `LIMIT` events.

Rows are read in keyset pages of `CHUNK` (the same order as the feed, newest first) and written as
they come, so an export of many events holds one page in memory. Under ASGI a streamed response
must be an async iterator (Django would otherwise read a sync one whole before sending): each page
is read in a thread with `sync_to_async` and yielded from an async generator.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable

import orjson
from asgiref.sync import sync_to_async

from events import page_queries, schema
from events.filters import EventFilter
from events.models import Event

LIMIT = 100_000
CHUNK = 1000
FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
CSV_COLUMNS = (
    "occurred",
    "event",
    "resource_id",
    "resource_name",
    "related",
    "payload",
    "id",
    "follows",
    "received",
)


def csv_header() -> str:
    return _csv_line(CSV_COLUMNS)


def csv_row(event: Event) -> str:
    """One event as a CSV line; related resources as `role:id` joined by spaces, payload as JSON."""
    related = " ".join(
        f"{r.get(schema.RESOURCE_ROLE, '')}:{r.get(schema.RESOURCE_ID, '')}" for r in event.related
    )
    return _csv_line(
        (
            schema.isoformat(event.occurred),
            event.event,
            event.resource_id,
            schema.resource_name(event.resource),
            related,
            orjson.dumps(event.payload).decode(),
            str(event.id),
            str(event.follows or ""),
            schema.isoformat(event.received),
        )
    )


def _csv_line(values) -> str:
    # A value starting with = + - @ would be a formula to a spreadsheet: quote it as text.
    safe = ["'" + v if v[:1] in ("=", "+", "-", "@") else v for v in map(str, values)]
    out = io.StringIO()
    csv.writer(out).writerow(safe)
    return out.getvalue()


def jsonl_row(event: Event) -> str:
    return orjson.dumps(event.to_wire()).decode() + "\n"


async def stream(event_filter: EventFilter, *, kind: str, limit: int = LIMIT) -> AsyncIterator[str]:
    """The lines of an export, newest event first, `limit` events at most."""
    line: Callable[[Event], str] = csv_row if kind == "csv" else jsonl_row
    if kind == "csv":
        yield csv_header()
    after = None
    sent = 0
    while sent < limit:
        size = min(CHUNK, limit - sent)
        page = await sync_to_async(page_queries.export_page)(event_filter, after=after, size=size)
        if not page:
            return
        yield "".join(line(e) for e in page)
        sent += len(page)
        if len(page) < size:
            return
        after = (page[-1].occurred, page[-1].id)
