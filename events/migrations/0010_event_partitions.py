"""Daily range partitions of the event log on PostgreSQL (issue 14; see `events.partitions`).

Works on a store that already holds events. On PostgreSQL, for `events_event` and
`events_eventresource`:

1. empty copies are built from the catalog (`CREATE TABLE … (LIKE …)`: the same columns,
   defaults, identity and checks), `PARTITION BY RANGE (occurred)`, with the primary key
   (id, occurred), a default partition and the day partitions from the oldest kept day to
   `AHEAD_DAYS` ahead;
2. rows are copied in batches of BATCH (each batch its own transaction), in the order of an index
   (events by (received, id), resource rows by id); every event id also goes into the
   unpartitioned `events_eventid` table (model `EventId`) that keeps ingest idempotent;
3. every index the table has at that moment (read from `pg_index`, whoever added it: the pg_trgm
   GIN of 0009, a later label index) is built again on the copy, under a temporary name;
4. in one transaction, under an ACCESS EXCLUSIVE lock, the rows written meanwhile are copied
   (CATCH_UP back from the last batch, ON CONFLICT DO NOTHING), the old tables are dropped, and
   the copies, their keys, indexes and identity sequence take the old names;
5. VACUUM (ANALYZE) of the new tables.

The event-resource row's foreign key to its event cannot stay a constraint (it would need the
partition key too): the model says `db_constraint=False`, and retention removes resource rows
with their events. Backwards, the same steps build plain tables and the constraint comes back.

Safe to run by several processes at once: a session advisory lock serialises them, and a run
that finds the tables already converted does nothing (as `serve --migrate` already holds the
setup lock, this guards plain `manage.py migrate` runs too). Not atomic: interrupted, the copies
are dropped and rebuilt by the next run; the old tables stay in place until the swap. It needs
free disk for a second copy of both tables while it runs. SQLite keeps its simple tables.
"""

import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations, models, transaction

from events.partitions import (
    AHEAD_DAYS,
    IDS_TABLE,
    create_day,
    default_table,
    name_child_indexes,
)
from eventsite.locks import lock_key

TABLES = ("events_event", "events_eventresource")
KEYS = {"events_event": ("received", "id"), "events_eventresource": ("id",)}
BATCH = 20_000
# Rows committed after the last batch was read but keyed before it (a slow writer's transaction):
# events by `received` (stamped before the commit), resource rows by id (taken at insert).
CATCH_UP = {"events_event": timedelta(minutes=10), "events_eventresource": 20_000}
FK_NAME = "events_eventresource_event_id_fk_events_event_id"
INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (?:ONLY )?(\S+) (USING .*)$")


def _one(cursor, sql, params=()):
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return row[0] if row else None


def _new(name: str) -> str:
    return f"{name[:58]}__new"


def _indexes(cursor, table: str) -> list[tuple[str, bool, str]]:
    """(name, unique, `USING …` part) of every index of `table` except its primary key."""
    cursor.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary ORDER BY c.relname",
        [table],
    )
    out = []
    for name, definition in cursor.fetchall():
        match = INDEX_DEF.match(definition)
        if match is None:
            raise RuntimeError(f"cannot rebuild index {name}: {definition}")
        out.append((name, bool(match.group(1)), match.group(4)))
    return out


def _foreign_keys(cursor) -> list[tuple[str, str]]:
    """(constraint, table) of the foreign keys that point at the event log's tables."""
    cursor.execute(
        "SELECT conname, conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
        "AND confrelid = ANY(ARRAY[to_regclass('events_event'), to_regclass('events_eventresource')])"
    )
    return cursor.fetchall()


def _days(cursor) -> list:
    today = datetime.now(UTC).date()
    oldest = _one(cursor, "SELECT min(occurred) FROM events_event")
    first = today - timedelta(days=settings.EVENTSITE_EVENT_RETENTION.days + 1)
    start = max(oldest.astimezone(UTC).date(), first) if oldest else today
    start = min(start, today)
    return [start + timedelta(days=n) for n in range((today - start).days + AHEAD_DAYS + 1)]


def _build(cursor, table: str, *, partitioned: bool, days: list) -> None:
    new = _new(table)
    cursor.execute(f'DROP TABLE IF EXISTS "{new}"')  # left by an interrupted run
    cursor.execute(
        f'CREATE TABLE "{new}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING IDENTITY '
        "INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)"
        + (" PARTITION BY RANGE (occurred)" if partitioned else "")
    )
    key = "id, occurred" if partitioned else "id"
    cursor.execute(
        f'ALTER TABLE "{new}" ADD CONSTRAINT "{_new(table + "_pkey")}" PRIMARY KEY ({key})'
    )
    if partitioned:
        cursor.execute(f'CREATE TABLE "{default_table(table)}" PARTITION OF "{new}" DEFAULT')
        for day in days:
            create_day(cursor, day, parent=new, table=table)


def _copy(connection, table: str, *, ids: bool) -> tuple | None:
    """Copy `table` into its new copy in batches along its key; return the last key copied."""
    keys = KEYS[table]
    order = ", ".join(keys)
    last = None
    while True:
        after = f"({order}) > ({', '.join(['%s'] * len(keys))})" if last else "TRUE"
        also = (
            f", ids AS (INSERT INTO {IDS_TABLE} (id, occurred) SELECT id, occurred FROM batch "
            "ON CONFLICT (id) DO NOTHING)"
            if ids
            else ""
        )
        descending = ", ".join(f"{k} DESC" for k in keys)
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                f'WITH batch AS (SELECT * FROM "{table}" WHERE {after} ORDER BY {order} LIMIT %s), '
                f'copied AS (INSERT INTO "{_new(table)}" SELECT * FROM batch){also} '
                f"SELECT {order} FROM batch ORDER BY {descending} LIMIT 1",
                [*(last or ()), BATCH],
            )
            row = cursor.fetchone()
        if row is None:
            return last
        last = tuple(row)


def _catch_up(cursor, table: str, last: tuple | None, *, ids: bool) -> None:
    """Under the swap's lock: the rows written since the batches read theirs."""
    where, params = "TRUE", []
    if last is not None:
        where, params = f"{KEYS[table][0]} >= %s", [last[0] - CATCH_UP[table]]
    cursor.execute(
        f'INSERT INTO "{_new(table)}" SELECT * FROM "{table}" WHERE {where} ON CONFLICT DO NOTHING',
        params,
    )
    if ids:
        cursor.execute(
            f'INSERT INTO {IDS_TABLE} (id, occurred) SELECT id, occurred FROM "{table}" '
            f"WHERE {where} ON CONFLICT (id) DO NOTHING",
            params,
        )


def _swap(cursor, table: str, indexes: list[tuple[str, bool, str]]) -> None:
    new = _new(table)
    sequence = _one(cursor, "SELECT pg_get_serial_sequence(%s, 'id')", [f'"{new}"'])
    if sequence:
        cursor.execute(
            f'SELECT setval(%s, (SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)',
            [sequence],
        )
    cursor.execute(f'DROP TABLE "{table}"')
    cursor.execute(f'ALTER TABLE "{new}" RENAME TO "{table}"')
    cursor.execute(
        f'ALTER TABLE "{table}" RENAME CONSTRAINT "{_new(table + "_pkey")}" TO "{table}_pkey"'
    )
    for name, _, _ in indexes:
        cursor.execute(f'ALTER INDEX "{_new(name)}" RENAME TO "{name}"')
    if sequence:
        cursor.execute(f'ALTER SEQUENCE {sequence} RENAME TO "{table}_id_seq"')


def rebuild(connection, *, partitioned: bool) -> None:
    """Rebuild the event log's two tables as partitioned (forward) or plain (backward) ones."""
    key = lock_key("migrate-event-partitions")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        with connection.cursor() as cursor:
            done = _one(cursor, "SELECT relkind FROM pg_class WHERE oid = 'events_event'::regclass")
            if (done == "p") == partitioned:
                return  # another process converted it while this one waited
            foreign = [fk for fk in _foreign_keys(cursor) if fk[1] != "events_eventresource"]
            if foreign:
                raise RuntimeError(f"foreign keys point at the event log: {foreign}")
            indexes = {table: _indexes(cursor, table) for table in TABLES}
            for found in indexes.values():
                for name, unique, using in found:
                    if partitioned and unique and "occurred" not in using:
                        raise RuntimeError(f"unique index {name} must include occurred")
            days = _days(cursor)
            for table in TABLES:
                _build(cursor, table, partitioned=partitioned, days=days)
        last = {
            table: _copy(connection, table, ids=partitioned and table == "events_event")
            for table in TABLES
        }
        with connection.cursor() as cursor:
            for table, found in indexes.items():
                for name, unique, using in found:
                    cursor.execute(
                        f'CREATE {"UNIQUE " if unique else ""}INDEX "{_new(name)}" '
                        f'ON "{_new(table)}" {using}'
                    )
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(
                'LOCK TABLE "events_eventresource", "events_event" IN ACCESS EXCLUSIVE MODE'
            )
            for table in TABLES:
                _catch_up(cursor, table, last[table], ids=partitioned and table == "events_event")
            for table in reversed(TABLES):
                _swap(cursor, table, indexes[table])
                if partitioned:
                    name_child_indexes(cursor, table)
            if not partitioned:
                cursor.execute(f"DELETE FROM {IDS_TABLE}")
                cursor.execute(
                    f'ALTER TABLE events_eventresource ADD CONSTRAINT "{FK_NAME}" FOREIGN KEY '
                    "(event_id) REFERENCES events_event (id) DEFERRABLE INITIALLY DEFERRED"
                )
        # Freshly written copies: VACUUM sets their visibility maps (index-only scans) and hint
        # bits, as autovacuum would later; ANALYZE gives the planner statistics of every partition.
        vacuum = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        with connection.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f'{vacuum} "{table}"')
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        rebuild(schema_editor.connection, partitioned=True)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        rebuild(schema_editor.connection, partitioned=False)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("events", "0009_event_search"),
    ]

    operations = [
        # On both backends, so that the test runner empties it with the log; used on PostgreSQL.
        migrations.CreateModel(
            name="EventId",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("occurred", models.DateTimeField()),
            ],
            options={
                "indexes": [models.Index(fields=["occurred"], name="eventid_occurred")],
            },
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
            state_operations=[
                migrations.AlterField(
                    model_name="eventresource",
                    name="event",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=models.deletion.CASCADE,
                        related_name="resources",
                        to="events.event",
                    ),
                ),
            ],
        ),
    ]
