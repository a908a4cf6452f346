"""0013's index, made usable by the labels walk alone (SQLite; issue 14).

As 0013 made it (`WHERE role = ''`), SQLite also chose it over `eventresource_role_occurred` for
the other reads of the primary rows (the suggestions' `page_queries.resource_rows` and
`resource_ids_starting`), where it covers nothing and its larger entries read more pages: 7 days
at 1M, 330 → 385-433 ms. A partial index serves a query only when the query's WHERE implies the
index's, so the index now also requires `labels IS NOT NULL` (true of every row: the column is
NOT NULL), which only `row_pages.walk_rows` states. A no-op on PostgreSQL.
"""

from django.db import migrations

COLUMNS = "ON events_eventresource (role, occurred, event_id, labels)"
DROP = "DROP INDEX IF EXISTS eventresource_primary_labels"
WALK_ONLY = (
    f"CREATE INDEX eventresource_primary_labels {COLUMNS} WHERE role = '' AND labels IS NOT NULL"
)
PRIMARY = f"CREATE INDEX eventresource_primary_labels {COLUMNS} WHERE role = ''"


def walk_only(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(DROP)
        schema_editor.execute(WALK_ONLY)


def primary(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(DROP)
        schema_editor.execute(PRIMARY)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0013_primary_resource_labels_index"),
    ]

    operations = [migrations.RunPython(walk_only, primary, elidable=False)]
