"""The one write path: every event, from any source, is stored by `ingest` / `store`."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from events import partitions, rollups, schema, wakeup
from events.broadcast import broadcast_stored
from events.models import Event as EventRow
from events.models import EventResource
from events.schema import RESOURCE_ID, RESOURCE_ROLE, Event, Limits, Problem
from events.sql_params import sql_adapters
from events.text_search import search_text
from eventsite import sqlite_wal

logger = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "id",
    "occurred",
    "received",
    "event",
    "resource_id",
    "resource",
    "related",
    "payload",
    "follows",
    "search",
)
RESOURCE_COLUMNS = ("event_id", "occurred", "resource_id", "role", "labels")
# Rows per multi-row INSERT: well inside SQLite's (32,766) and PostgreSQL's (65,535) parameter caps.
EVENTS_PER_STATEMENT = 256
RESOURCES_PER_STATEMENT = 512


@dataclass
class IngestResult:
    stored: list[Event] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[tuple[int, Problem]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


def ingest(
    items: Sequence[Any],
    *,
    source: str,
    all_or_nothing: bool = True,
    body_size: int | None = None,
    limits: Limits | None = None,
    allow_reserved: bool = False,
) -> IngestResult:
    """Validate raw event objects and store the valid ones.

    With `all_or_nothing` (the REST contract) one invalid event rejects the whole batch and
    nothing is stored; otherwise (websocket frames) the valid events are stored and the problems
    are returned for the caller to report.
    """
    events, problems = schema.parse_events(
        list(items),
        limits=limits or Limits.from_settings(),
        body_size=body_size,
        allow_reserved=allow_reserved,
    )
    if problems and all_or_nothing:
        return IngestResult(rejected=problems)
    result = store(events, source=source)
    result.rejected = problems
    return result


def store(events: Iterable[Event], *, source: str) -> IngestResult:
    """Store validated events atomically, once per id; the first copy of an id wins.

    No model instances (they cost more than the database does at this volume): on PostgreSQL one
    statement over column arrays (`_insert_postgresql`); on SQLite, where a statement costs no
    round trip, multi-row INSERTs in one transaction. Subscribers are told on commit, never before.
    """
    now = timezone.now()
    seen: set[uuid.UUID] = set()
    unique: list[Event] = []
    for event in events:
        if event.id in seen:
            continue
        seen.add(event.id)
        event.received = now
        unique.append(event)
    if not unique:
        return IngestResult()

    sqlite_wal.writers_wait()
    if connection.vendor == "postgresql":
        # One statement (events, resource rows and rollups) is atomic by itself: outside a
        # transaction it is one round trip. Inside one it keeps its savepoint, as before.
        with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
            inserted = _insert_postgresql(unique, now)
        stored = [e for e in unique if e.id in inserted]
    else:
        with transaction.atomic():
            stored = _insert_sqlite(unique)
            if stored:
                rollups.record(stored)
    if stored:
        # Outside a transaction these run at once; inside one, when it commits.
        transaction.on_commit(lambda: broadcast_stored(stored))
        wakeup.stored_in_transaction()
    duplicates = len(unique) - len(stored)
    if duplicates:
        logger.debug("ingest from %s: %d duplicate ids ignored", source, duplicates)
    return IngestResult(stored=stored, duplicates=duplicates)


def internal_event(
    name: str,
    *,
    resource: dict[str, str],
    related: Iterable[dict[str, str]] = (),
    payload: dict[str, Any] | None = None,
    occurred: datetime | None = None,
    id: uuid.UUID | None = None,
    follows: uuid.UUID | None = None,
    allow_reserved: bool = True,
) -> Event:
    """Build an event that eventsite itself makes, held to the same contract as any client's.

    `allow_reserved=False` for an event whose name a person chose (the emit-event action): it
    may not take a reserved name (`schema.RESERVED_PREFIXES`).

    The one builder of internal events (audit, automation and action events, rejected frames,
    webhook notices, the emit-event action): a problem raises `schema.EventInvalid`. Store the
    result with `emit`, or with `store` together with other events in one transaction.
    """
    data = {
        "occurred": occurred or timezone.now(),
        "event": name,
        "resource": resource,
        "related": list(related),
        "payload": {} if payload is None else payload,
        "id": id or uuid.uuid4(),
        "follows": follows,
    }
    return schema.parse_event(data, limits=Limits.from_settings(), allow_reserved=allow_reserved)


def emit(name: str, *, source: str = "internal", **fields: Any) -> Event:
    """Build (`internal_event`) and store one internal event now; return it."""
    event = internal_event(name, **fields)
    store([event], source=source)
    return event


# --- SQL -----------------------------------------------------------------------------------------


def _chunk_sizes(n: int, largest: int) -> list[int]:
    """Split n rows into statement sizes that are powers of two (at most `largest`).

    The database driver caches prepared statements by SQL text; with arbitrary sizes every batch
    would be a new multi-row statement (each large) and the cache would grow by hundreds of MB.
    Powers of two keep it to a handful of statements.
    """
    sizes = []
    size = largest
    while n:
        while size > n:
            size //= 2
        sizes.append(size)
        n -= size
    return sizes


def _execute_rows(
    cursor, sql: str, row: str, rows: list[tuple], *, largest: int, returning: bool = False
):
    """Run `sql` (with `{values}` for the VALUES list) over `rows` in power-of-two chunks."""
    returned: list[tuple] = []
    start = 0
    for size in _chunk_sizes(len(rows), largest):
        chunk = rows[start : start + size]
        start += size
        cursor.execute(sql.format(values=", ".join([row] * size)), [v for r in chunk for v in r])
        if returning:
            returned += cursor.fetchall()
    return returned


def _insert_sqlite(events: list[Event]) -> list[Event]:
    """Insert the events that are new and their resource rows (multi-row INSERTs); return the
    events inserted."""
    uid, dt, js, _ = sql_adapters()
    q = connection.ops.quote_name
    rows = [
        (
            uid(e.id),
            dt(e.occurred),
            dt(e.received),
            e.event,
            e.resource[RESOURCE_ID],
            js(e.resource),
            js(e.related),
            js(e.payload),
            uid(e.follows),
            search_text(e),
        )
        for e in events
    ]
    with connection.cursor() as cursor:
        returned = _execute_rows(
            cursor,
            f"INSERT INTO {q(EventRow._meta.db_table)} ({', '.join(q(c) for c in EVENT_COLUMNS)}) "
            "VALUES {values} ON CONFLICT (id) DO NOTHING RETURNING id",
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
            largest=EVENTS_PER_STATEMENT,
            returning=True,
        )
        inserted = {r[0] for r in returned}  # as stored (uid's form), not parsed back
        stored = [(e, row) for e, row in zip(events, rows, strict=True) if row[0] in inserted]
        resource_rows: list[tuple] = []
        for e, (event_id, occurred, _, _, _, resource, *_) in stored:
            resource_rows.append((event_id, occurred, e.resource[RESOURCE_ID], "", resource))
            for related in e.related:
                resource_rows.append(
                    (event_id, occurred, related[RESOURCE_ID], related[RESOURCE_ROLE], js(related))
                )
        _execute_rows(
            cursor,
            f"INSERT INTO {q(EventResource._meta.db_table)} "
            f"({', '.join(q(c) for c in RESOURCE_COLUMNS)}) VALUES {{values}}",
            "(%s, %s, %s, %s, %s)",
            resource_rows,
            largest=RESOURCES_PER_STATEMENT,
        )
    return [e for e, _ in stored]


def _insert_postgresql(events: list[Event], received: datetime) -> set[uuid.UUID]:
    """Insert the events that are new, their resource rows and their rollup counts in one
    statement; return the ids inserted.

    The rows travel as one JSON document (one encoding in C, one parameter), so the statement's
    text is the same for every batch: short to send, no per-value quoting, no chunking. It is
    read as jsonb once (`jsonb_to_recordset`; `json_to_recordset` parsed each jsonb column a
    second time, ~15 µs of backend CPU per event more). The resource rows are made by the
    statement from the stored events' `resource` and `related`, not sent and parsed a second
    time (a third of a batch's bytes; ~25 µs of backend CPU per event). Figures: docs/scaling.md,
    "Ingest on PostgreSQL: where the time goes".
    """
    q = connection.ops.quote_name
    event_rows = [
        {
            "id": e.id,
            "occurred": e.occurred,
            "event": e.event,
            "resource_id": e.resource[RESOURCE_ID],
            "resource": e.resource,
            "related": e.related,
            "payload": e.payload,
            "follows": e.follows,
            "search": search_text(e),
        }
        for e in events
    ]
    sql = (
        "WITH input AS (SELECT * FROM jsonb_to_recordset(%s::jsonb) AS t(id uuid, "
        "occurred timestamptz, event text, resource_id text, resource jsonb, related jsonb, "
        "payload jsonb, follows uuid, search text)), "
        # The log is partitioned by day: ids are unique in their own table (events.partitions).
        f"claimed AS ({partitions.claim_ids_sql('input')}), "
        f"stored AS (INSERT INTO {q(EventRow._meta.db_table)} "
        f"({', '.join(q(c) for c in EVENT_COLUMNS)}) "
        "SELECT id, occurred, %s, event, resource_id, resource, related, payload, follows, search "
        "FROM input JOIN claimed USING (id) "
        "RETURNING id, occurred, event, resource_id, resource, related), "
        # One row per involved resource, the primary first (role ""), then the related in order.
        f"resources AS (INSERT INTO {q(EventResource._meta.db_table)} "
        f"({', '.join(q(c) for c in RESOURCE_COLUMNS)}) "
        "SELECT s.id, s.occurred, "
        f"CASE WHEN r.n = 0 THEN s.resource_id ELSE r.labels->>'{RESOURCE_ID}' END, "
        f"CASE WHEN r.n = 0 THEN '' ELSE r.labels->>'{RESOURCE_ROLE}' END, r.labels "
        "FROM stored AS s CROSS JOIN LATERAL ("
        "SELECT s.resource AS labels, 0::bigint AS n UNION ALL "
        "SELECT e.labels, e.n FROM jsonb_array_elements(s.related) WITH ORDINALITY AS e(labels, n)"
        ") AS r), "
        f"counts AS ({rollups.upsert_stored_sql('stored')}) "
        "SELECT id FROM stored"
    )
    params = [orjson.dumps(event_rows).decode(), received]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}
