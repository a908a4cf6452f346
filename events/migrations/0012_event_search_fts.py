"""Text search's index on SQLite (issue 14): an FTS5 trigram table over `Event.search`.

`events_event_fts` is an external-content FTS5 table (it stores no copy of the text, only the
index) keyed by `events_event`'s rowid, with the `trigram` tokenizer: every 3 characters of the
already folded text, case-sensitive (`events.text_search` folds once, in Python), `detail=none`
(rowids only: half the size and a third less CPU per insert than positions, measured; a term
is looked up as the AND of its trigrams and confirmed by `instr`) and `columnsize=0` (no ranking).

SQLite triggers keep it in step with the table on every insert, delete and change of `search`,
so ingest, retention and any other writer need no code of their own. The existing log is
indexed by FTS5's `rebuild` in the migration's one transaction: writers wait meanwhile, and an
interruption leaves nothing half done. Measured at 1M events: see docs/scaling.md.

The index is keyed by rowid, which `events_event` (a UUID primary key) does not alias: a table
rebuild that copies rows into a new table (a future migration altering the table on SQLite)
renumbers them, and must run `INSERT INTO events_event_fts(events_event_fts) VALUES ('rebuild')`
and recreate the triggers. (SQLite's VACUUM keeps the rowids of such a table: checked on 3.40.)
Needs SQLite 3.34 or later (the trigram tokenizer). A no-op on PostgreSQL (pg_trgm, 0009).
"""

from django.db import migrations

CREATE = [
    "CREATE VIRTUAL TABLE events_event_fts USING fts5("
    "search, content='events_event', content_rowid='rowid', "
    "tokenize='trigram case_sensitive 1', detail=none, columnsize=0)",
    "CREATE TRIGGER events_event_fts_insert AFTER INSERT ON events_event BEGIN "
    "INSERT INTO events_event_fts(rowid, search) VALUES (new.rowid, new.search); END",
    "CREATE TRIGGER events_event_fts_delete AFTER DELETE ON events_event BEGIN "
    "INSERT INTO events_event_fts(events_event_fts, rowid, search) "
    "VALUES ('delete', old.rowid, old.search); END",
    "CREATE TRIGGER events_event_fts_update AFTER UPDATE OF search ON events_event BEGIN "
    "INSERT INTO events_event_fts(events_event_fts, rowid, search) "
    "VALUES ('delete', old.rowid, old.search); "
    "INSERT INTO events_event_fts(rowid, search) VALUES (new.rowid, new.search); END",
    "INSERT INTO events_event_fts(events_event_fts) VALUES ('rebuild')",
]
DROP = [
    "DROP TRIGGER IF EXISTS events_event_fts_update",
    "DROP TRIGGER IF EXISTS events_event_fts_delete",
    "DROP TRIGGER IF EXISTS events_event_fts_insert",
    "DROP TABLE IF EXISTS events_event_fts",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in CREATE:
            cursor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        for statement in DROP:
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0011_resource_label_index"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
