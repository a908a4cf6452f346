"""The resource-label index on PostgreSQL (issue 14): a GIN index over `events_event.resource`.

`jsonb_path_ops` keeps one hashed entry per (label, value) of an event's resource, so it serves
`resource @> '{"key": "value"}'`, which is how the filter writes an exact label pattern on
PostgreSQL (`events.filters._labels_q`). Globs and negations are tested row by row (a page walks
time first, `events.page_plans`). SQLite has no such index type: nothing to do there (its pages
walk too). Not CONCURRENTLY, for the reason given in 0009: serve processes starting together
wait for the migrating one.
"""

from django.db import migrations


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS event_resource_gin "
            "ON events_event USING gin (resource jsonb_path_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS event_resource_gin")


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0009_event_search"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
