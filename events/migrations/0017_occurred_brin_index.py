"""A BRIN index over `events_event.occurred` on PostgreSQL (issue 14).

A day partition's trigram index (0009) finds every candidate of a text term in that day, and
PostgreSQL rechecks each in the table: a 0.1 % term at 10M events, 18.6k candidates in the newest
day, 18k pages read (66-78 ms). A page of it is held by the newest hour or two, from which a
newest-first read begins (`rollups.reach`, `page_plans._newest_by_days`). The B-tree on
`(occurred, id)` gives that range's rows one by one, which the planner will not AND with the
trigram candidates; a BRIN index gives the range's pages at the cost of reading a few of its own,
and the planner ANDs them: 1,463-1,709 pages rechecked, 25-29 ms.

`pages_per_range` 32 (a few hundred events a range); `autosummarize` asks autovacuum to summarize
each range as it fills (an unsummarized range is always read, so a stale index is slower, never
wrong). The log is appended to in roughly `occurred` order, which is what BRIN needs. Nothing on
SQLite (no such index; its text pages read the FTS5 table). Not CONCURRENTLY, for the reason
given in 0009; a BRIN build reads the table once (a day's partition of 1.25M events: 0.6 s).
"""

from django.db import migrations

from events.partitions import log_index

CREATE = (
    "CREATE INDEX IF NOT EXISTS event_occurred_brin ON events_event "
    "USING brin (occurred) WITH (pages_per_range = 32, autosummarize = on)"
)


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0016_resource_name_index"),
    ]

    operations = [log_index(CREATE, "event_occurred_brin")]
