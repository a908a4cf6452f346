"""Text search's column and index (issue 14): `Event.search`, see `events.text_search`.

Works on a log that already holds events: the column is added with a constant default (no table
rewrite on either backend), filled in batches of BATCH events, each batch its own transaction
(so the migration is not atomic; run again after an interruption, it fills what is left), then
indexed on PostgreSQL by a pg_trgm GIN index (SQLite tests the column row by row, see
`events.text_search`). Not CONCURRENTLY: that waits for every other transaction in the database,
and `serve` processes starting together wait for the migrating one's setup lock inside a
statement, so the build and they would wait for each other for ever (seen in CI: several `serve
--migrate` on a fresh database never answered). A plain build holds off writes while it runs; the
migration runs before the process serves anything. The pg_trgm extension must be available (it ships with
PostgreSQL's contrib package; a database owner may create it since PostgreSQL 13).
"""

import orjson
from django.db import migrations, models, transaction

from events.text_search import search_text_of

BATCH = 2000


def _json(value):
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    Event = apps.get_model("events", "Event")
    pk = Event._meta.pk
    rows = Event.objects.using(connection.alias).filter(search="").order_by("pk")
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        # Read the JSON as stored text, decoded here: the same on both backends.
        batch = list(page.values_list("pk", "event", "resource", "related", "payload")[:BATCH])
        if not batch:
            return
        updates = [
            (
                search_text_of(name, _json(resource), _json(related), _json(payload)),
                pk.get_db_prep_value(id_, connection),
            )
            for id_, name, resource, related, payload in batch
        ]
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.executemany("UPDATE events_event SET search = %s WHERE id = %s", updates)
        last = batch[-1][0]


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            raise RuntimeError(
                "text search needs PostgreSQL's pg_trgm extension: install the contrib package "
                "(e.g. postgresql-contrib) on the database server, then migrate again"
            )
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cursor.execute(
            "CREATE INDEX IF NOT EXISTS event_search_trgm "
            "ON events_event USING gin (search gin_trgm_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS event_search_trgm")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("events", "0008_apitoken_scope"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # A constant default: a new column, not a rewrite of the table (SQLite's AddField of
            # a NOT NULL column would copy the whole table).
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE events_event ADD COLUMN search text NOT NULL DEFAULT ''",
                    "ALTER TABLE events_event DROP COLUMN search",
                )
            ],
            state_operations=[
                migrations.AddField(
                    model_name="event",
                    name="search",
                    field=models.TextField(db_default="", editable=False),
                )
            ],
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
