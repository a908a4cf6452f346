"""The resource-label index on PostgreSQL (issue 14): a GIN index over `events_event.resource`.

`jsonb_path_ops` keeps one hashed entry per (label, value) of an event's resource, so it serves
`resource @> '{"key": "value"}'`, which is how the filter writes an exact label pattern on
PostgreSQL (`events.filter_sql.labels_q`); its planner estimates such a value's share from the
column's statistics and reads the index only for a rare one. Globs and negations are tested row
by row (a page walks time first, `events.page_plans`). On the partitioned log the index is made
on every day's partition and named after it (`event_resource_gin_p20261128`, as
`events.partitions` names the others). SQLite has no such index type: nothing to do there (its
pages walk). Not CONCURRENTLY, for the reason given in 0009: serve processes starting together
wait for the migrating one.
"""

from django.db import migrations

from events.partitions import log_index

CREATE = (
    "CREATE INDEX IF NOT EXISTS event_resource_gin "
    "ON events_event USING gin (resource jsonb_path_ops)"
)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0010_event_partitions"),
    ]

    operations = [log_index(CREATE, "event_resource_gin")]
