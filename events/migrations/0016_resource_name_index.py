"""The resource-name index on PostgreSQL (issue 14): a B-tree over the primary resource's
`prefect.resource.name` label, then `occurred`.

A glob on names (`Invoice 4242*`, `Invoice 42*7`) is a regex anchored at its literal prefix
(`events.labels.glob_regex`), which PostgreSQL reads from a `text_pattern_ops` index as the
range of that prefix (and of a day slice's times, `page_plans._read_narrowed`), testing the
regex on each candidate's row: `Invoice 42*7` at 10M events, 2.6k candidates a day for 264
matches. (Not from the index alone: PostgreSQL's index-only scans do not evaluate an indexed
expression, so the event's id is not included.) Before it, such a glob was read from the search
text's trigram index, which knows the words of a value but not their order: at 10M, 12k
candidates in 7 days for ` 4242`, 55-70 ms a page.

Only this label: a resource's name is the one label people look events up by, by part of it; the
other labels' values are few and common (a region, a tag), which a walk of time finds. Exact
values keep the GIN index on `resource` (0011). SQLite has no statistics to choose the index by
and reads rare globs from its FTS5 table (`text_search.label_fts_match`): nothing to do there.
Not CONCURRENTLY, for the reason given in 0009.
"""

from django.db import migrations

from events.partitions import log_index

CREATE = (
    "CREATE INDEX IF NOT EXISTS event_resource_name ON events_event "
    "(((resource ->> 'prefect.resource.name')) text_pattern_ops, occurred)"
)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0015_resource_rows_id_index_covers_role_and_event"),
    ]

    operations = [log_index(CREATE, "event_resource_name")]
