"""Daily range partitions of the event log on PostgreSQL (issue 14): made ahead, dropped whole.

On PostgreSQL `events_event` and `events_eventresource` are partitioned by `occurred`, one
partition per UTC day (`<table>_pYYYYMMDD`, [day, day + 1)), plus a default partition
(`<table>_default`) that takes any row no day partition covers (a far-past or far-future
`occurred`), so no event is ever refused for its time. Migration 0010 converts an existing store.

- `ensure_days` creates the partitions of the coming days ahead of time (the retention service
  calls it each pass). A day whose rows already sit in the default partition (an early event) is
  made by moving those rows into a new table and attaching it.
- `drop_days_before` retires whole days: a partition is detached and dropped, O(partitions), not
  O(rows). The audit events it holds that are still within the audit retention are first moved
  to the default partition, where the ordinary DELETE of `events.retention` removes them later.
  DETACH locks the whole log (ACCESS EXCLUSIVE on the parent), so that transaction does only
  O(audit rows) work; the day's ids are forgotten after it commits (O(rows), locking nothing
  but those ids), and their count is the day's count (no `count(*)` of the partition).
- Idempotent ingest (`events.ingest`): a primary key on a partitioned table must include the
  partition key, so `id` alone cannot be unique there. Ingest claims each id in the unpartitioned
  `events_eventid (id, occurred)` table first (`claim_ids_sql`, in the same statement); only the
  claimed events are written.
  Retention forgets the ids of the events it removes (`forget_ids_of_dropped_days`,
  `forget_ids`).

SQLite keeps its simple tables: `enabled()` is false there and nothing here runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, migrations, transaction

from eventsite.locks import lock_key

logger = logging.getLogger(__name__)

TABLES = ("events_event", "events_eventresource")
IDS_TABLE = "events_eventid"
AHEAD_DAYS = 7
LOCK = "event-partitions"


def enabled() -> bool:
    """Whether the event log is partitioned (PostgreSQL after migration 0010)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('events_event')")
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def day_table(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_table(table: str) -> str:
    return f"{table}_default"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _lock(cursor) -> None:
    """Serialise partition changes of all processes (transaction-scoped advisory lock)."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(LOCK)])


def create_day(cursor, day: date, *, parent: str | None = None, table: str | None = None) -> bool:
    """Create the partition of `day` for one table (in the caller's transaction), if missing.

    `table` names the partitions (default: `parent`); the migration builds them under a
    temporary parent name. Rows of that day already in the default partition move into it.
    """
    parent = parent or table
    table = table or parent
    name = day_table(table, day)
    cursor.execute("SELECT to_regclass(%s)", [name])
    if cursor.fetchone()[0] is not None:
        return False
    start, end = day_bounds(day)
    default = default_table(table)
    cursor.execute(f'CREATE TABLE "{name}" (LIKE "{parent}" INCLUDING DEFAULTS INCLUDING STORAGE)')
    cursor.execute("SELECT to_regclass(%s)", [default])
    if cursor.fetchone()[0] is not None:
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{default}" WHERE occurred >= %s AND occurred < %s '
            f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved',
            [start, end],
        )
    # Bounds as literals: DDL takes no parameters.
    cursor.execute(
        f'ALTER TABLE "{parent}" ATTACH PARTITION "{name}" '
        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
    )
    name_child_indexes(cursor, parent, table=table)
    return True


def name_child_indexes(cursor, parent: str, *, table: str | None = None) -> None:
    """Name each partition's index after its parent index: `<index>_<partition suffix>`
    (`event_occurred_id_p20261128`), so a plan says which index of the log it reads."""
    table = table or parent
    cursor.execute(
        "SELECT pi.relname, ci.relname, ct.relname FROM pg_index x "
        "JOIN pg_class pi ON pi.oid = x.indexrelid "
        "JOIN pg_inherits h ON h.inhparent = x.indexrelid "
        "JOIN pg_class ci ON ci.oid = h.inhrelid "
        "JOIN pg_index cx ON cx.indexrelid = ci.oid "
        "JOIN pg_class ct ON ct.oid = cx.indrelid "
        "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary",
        [f'"{parent}"'],
    )
    for index, child, partition in cursor.fetchall():
        wanted = f"{index}_{partition.removeprefix(table + '_')}"[:63]
        if child != wanted:
            cursor.execute(f'ALTER INDEX "{child}" RENAME TO "{wanted}"')


def log_index(create: str, name: str, *, table: str = "events_event") -> migrations.RunPython:
    """A migration's operation for one index of PostgreSQL's partitioned log (0011, 0016, 0017):
    `create` (`CREATE INDEX IF NOT EXISTS <name> ON <table> …`, which makes it on every
    partition), the partitions' indexes then named after it (`name_child_indexes`); reversed by
    dropping `name`. Nothing on SQLite. Not CONCURRENTLY, for the reason migration 0009 gives."""

    def create_index(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(create)
            name_child_indexes(cursor, table)

    def drop_index(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')

    return migrations.RunPython(create_index, drop_index, elidable=False)


def ensure_days(today: date | None = None, *, back: int = 0, ahead: int = AHEAD_DAYS) -> list[str]:
    """Make the partitions of the days from `today - back` to `today + ahead`; return new ones."""
    today = today or datetime.now(UTC).date()
    made = []
    for offset in range(-back, ahead + 1):
        day = today + timedelta(days=offset)
        with transaction.atomic(), connection.cursor() as cursor:
            _lock(cursor)
            for table in TABLES:
                if create_day(cursor, day, table=table):
                    made.append(day_table(table, day))
    if made:
        logger.info("partitions: made %s", ", ".join(made))
    return made


def day_partitions(table: str = "events_event") -> list[tuple[str, datetime, datetime]]:
    """The day partitions of `table`: (name, start, end), oldest first (the default left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [table],
        )
        names = [r[0] for r in cursor.fetchall()]
    prefix = f"{table}_p"
    out = []
    for name in names:
        suffix = name.removeprefix(prefix)
        if name.startswith(prefix) and len(suffix) == 8 and suffix.isdigit():
            day = datetime.strptime(suffix, "%Y%m%d").date()
            out.append((name, *day_bounds(day)))
    return sorted(out, key=lambda p: p[1])


def drop_days_before(
    cutoff: datetime,
    *,
    keep_names: Sequence[str] = (),
    keep_since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Drop every day partition that ends at or before `cutoff`; return how many events went.

    Events named in `keep_names` that occurred at or after `keep_since` (the audit events within
    their longer retention) are moved to the default partition first, with their resource rows.
    Each day is its own short transaction; its ids are forgotten in the next one, and how many
    were is the day's count (every stored event has its id there: ingest claims it first).
    """
    events = TABLES[0]
    # Ids a pass left behind (stopped between a day's drop and its ids): below the oldest day.
    dropped = forget_ids_of_dropped_days()
    for name, start, end in day_partitions(events):
        if end > cutoff:
            break
        if not _drop_day(name, start, keep_names=keep_names, keep_since=keep_since):
            continue  # another process dropped it meanwhile
        with transaction.atomic():
            count = forget_ids_of_dropped_days(start, end)
        dropped += count
        logger.info("partitions: dropped %s (%d events)", name, count)
        if progress:
            progress(dropped)
    return dropped


def _drop_day(
    name: str, start: datetime, *, keep_names: Sequence[str], keep_since: datetime | None
) -> bool:
    """Detach and drop one day's partitions, moving its kept events to the default partition.

    DETACH takes an ACCESS EXCLUSIVE lock on the log until commit (ingest and reads wait), so
    nothing here reads the day's rows but the kept ones (an index range of `event`).
    """
    events, resources = TABLES
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is None:
            return False
        rname = day_table(resources, start.date())
        cursor.execute("SELECT to_regclass(%s)", [rname])
        has_resources = cursor.fetchone()[0] is not None
        cursor.execute(f'ALTER TABLE "{events}" DETACH PARTITION "{name}"')
        if has_resources:
            cursor.execute(f'ALTER TABLE "{resources}" DETACH PARTITION "{rname}"')
        if keep_names:
            cursor.execute(
                f'INSERT INTO "{events}" SELECT * FROM "{name}" '
                "WHERE event = ANY(%s) AND occurred >= %s RETURNING id",
                [list(keep_names), keep_since or start],
            )
            kept = [r[0] for r in cursor.fetchall()]
            if kept and has_resources:
                cursor.execute(
                    f'INSERT INTO "{resources}" SELECT * FROM "{rname}" WHERE event_id = ANY(%s)',
                    [kept],
                )
        cursor.execute(f'DROP TABLE "{name}"')
        if has_resources:
            cursor.execute(f'DROP TABLE "{rname}"')
    return True


# --- the id table of idempotent ingest ------------------------------------------------------------


def claim_ids_sql(source: str) -> str:
    """The statement (for a CTE of ingest's one INSERT) that claims the ids of `source`'s rows
    (columns id, occurred) and returns those not claimed before: only they are written."""
    return (
        f"INSERT INTO {IDS_TABLE} (id, occurred) SELECT id, occurred FROM {source} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


def forget_ids(ids: Sequence) -> None:
    """Forget the ids of events deleted row by row (the default partition's DELETE)."""
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {IDS_TABLE} WHERE id = ANY(%s::uuid[])", [list(ids)])


def forget_ids_of_dropped_days(start: datetime | None = None, end: datetime | None = None) -> int:
    """Forget the ids of the events of dropped days, in [start, end) (default: every time before
    the oldest day partition); return how many. A range read of the id table's `occurred` index.

    No day partition covers that time any more, so its events can only be in the default
    partition (audit events kept longer, far-past events): the ids of those stay.
    """
    if end is None:
        days = day_partitions()
        if not days:
            return 0
        end = days[0][1]
    since, params = ("i.occurred >= %s AND ", [start]) if start else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {IDS_TABLE} AS i WHERE {since}i.occurred < %s "
            f'AND NOT EXISTS (SELECT FROM "{default_table(TABLES[0])}" AS e '
            "WHERE e.id = i.id AND e.occurred = i.occurred)",
            [*params, end],
        )
        return cursor.rowcount
