"""Name and resource-id indexes that also serve prefixes on PostgreSQL (issue 14).

A b-tree in the database's collation serves `=` but not `LIKE 'prefix%'` unless the collation is
"C"; the pattern operator classes serve both. SQLite ignores operator classes (its prefix match
is a range on the binary collation, which the plain index serves), so there the indexes stay as
they are and are not rebuilt.
"""

from django.db import migrations, models

PATTERN = {
    "event_name_occurred": ("events_event", "event", "varchar_pattern_ops"),
    "event_resource_occurred": ("events_event", "resource_id", "text_pattern_ops"),
    "eventresource_id_occurred": ("events_eventresource", "resource_id", "text_pattern_ops"),
}


def pattern_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, column, opclass) in PATTERN.items():
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
        schema_editor.execute(
            f'CREATE INDEX "{name}" ON "{table}" ("{column}" {opclass}, "occurred")'
        )


def plain_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, column, _) in PATTERN.items():
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')
        schema_editor.execute(f'CREATE INDEX "{name}" ON "{table}" ("{column}", "occurred")')


def index(fields, name, opclass):
    return models.Index(fields=fields, name=name, opclasses=[opclass, "timestamptz_ops"])


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0006_saved_views_and_preferences"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(pattern_indexes, plain_indexes)],
            state_operations=[
                migrations.RemoveIndex(model_name="event", name="event_name_occurred"),
                migrations.RemoveIndex(model_name="event", name="event_resource_occurred"),
                migrations.RemoveIndex(
                    model_name="eventresource", name="eventresource_id_occurred"
                ),
                migrations.AddIndex(
                    model_name="event",
                    index=index(
                        ["event", "occurred"], "event_name_occurred", "varchar_pattern_ops"
                    ),
                ),
                migrations.AddIndex(
                    model_name="event",
                    index=index(
                        ["resource_id", "occurred"], "event_resource_occurred", "text_pattern_ops"
                    ),
                ),
                migrations.AddIndex(
                    model_name="eventresource",
                    index=index(
                        ["resource_id", "occurred"], "eventresource_id_occurred", "text_pattern_ops"
                    ),
                ),
            ],
        ),
    ]
