"""Check the COPY seed against the migrating one (PostgreSQL): the same store, row for row.

    EVENTSITE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/eventsite_bench \\
        .venv/bin/python -m bench.seed_check --events 100000 [--keep]

Seeds the same N events (same generator seed, same end time) twice: `<prefix>migrate_<N>` the
old way (`bench.seed.seed_postgres`: at SEED_MIGRATION, then every later migration, 0009's
backfill of `Event.search` and 0010's conversion to daily partitions included) and
`<prefix>copy_<N>` at the latest schema (`bench.seed.seed_postgres_latest`), each VACUUM
ANALYZEd, each timed. Then compares, and exits non-zero on any difference:

- applied migrations (`django_migrations`: app and name);
- partitions of the event log (names and bounds) and every index (name, table and definition);
- row counts of `events_event`, `events_eventresource`, `events_eventid`, `events_eventcount`;
- every event, column by column (`search` included), by id; every resource row (its serial id
  aside), every id row and every rollup row, as multisets.

`--prefix` (default `eventsite_bench_check`) names both databases, which are dropped at the end
unless `--keep`: `EVENTSITE_BENCH_TEMPLATE=<prefix>copy python -m bench.query --events N` then runs
over the COPY seed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from bench.common import drop_postgres, fresh_postgres, loadavg
from bench.seed import describe, seed_postgres, seed_postgres_latest, vacuum_analyze_once

MIGRATIONS = "SELECT app, name FROM django_migrations"
PARTITIONS = (
    "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
    "JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent IN ('events_event'::regclass, 'events_eventresource'::regclass)"
)
INDEXES = "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
EVENTS = (
    "SELECT id::text, md5(row(occurred, received, event, resource_id, resource, related, "
    "payload, follows)::text), search FROM events_event"
)
RESOURCES = (
    "SELECT md5(row(event_id, occurred, resource_id, role, labels)::text) FROM events_eventresource"
)
IDS = "SELECT id::text, occurred FROM events_eventid"
ROLLUPS = 'SELECT width, bucket, event, count, "first", "last" FROM events_eventcount'
COUNTS = ("events_event", "events_eventresource", "events_eventid", "events_eventcount")


def read(url: str) -> dict:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")

        def rows(sql: str) -> list[tuple]:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

        return {
            "migrations": set(rows(MIGRATIONS)),
            "partitions": set(rows(PARTITIONS)),
            "indexes": set(rows(INDEXES)),
            "counts": {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTS},
            "events": {r[0]: r[1:] for r in rows(EVENTS)},
            "resources": Counter(r[0] for r in rows(RESOURCES)),
            "ids": Counter(rows(IDS)),
            "rollups": Counter(rows(ROLLUPS)),
        }


def compare(old: dict, new: dict) -> list[str]:
    problems = []
    for key in ("migrations", "partitions", "indexes"):
        if old[key] != new[key]:
            problems.append(
                f"{key}: only migrated {sorted(old[key] - new[key])[:5]}, "
                f"only copied {sorted(new[key] - old[key])[:5]}"
            )
    if old["counts"] != new["counts"]:
        problems.append(f"row counts: migrated {old['counts']}, copied {new['counts']}")
    columns = searches = 0
    for eid, (row, search) in old["events"].items():
        other = new["events"].get(eid)
        if other is None:
            columns += 1
            continue
        columns += other[0] != row
        searches += other[1] != search
    if columns or searches or len(old["events"]) != len(new["events"]):
        problems.append(
            f"events: {columns} differ in a column or are missing, {searches} in search"
        )
    for key in ("resources", "ids", "rollups"):
        if old[key] != new[key]:
            problems.append(
                f"{key}: {sum(((old[key] - new[key]) + (new[key] - old[key])).values())} rows differ"
            )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--prefix", default="eventsite_bench_check")
    parser.add_argument("--keep", action="store_true", help="keep both databases")
    args = parser.parse_args()
    base = os.environ["EVENTSITE_DATABASE_URL"].rpartition("/")[0]
    end = datetime.now(UTC) - timedelta(minutes=1)
    urls = {
        "migrated": f"{base}/{args.prefix}migrate_{args.events}",
        "copied": f"{base}/{args.prefix}copy_{args.events}",
    }
    print(f"load {loadavg()}", flush=True)
    seeded, infos = {}, {}
    for how, url in urls.items():
        fresh_postgres(url)
        started = time.monotonic()
        seed = seed_postgres if how == "migrated" else seed_postgres_latest
        info = seed(url, args.events, end=end)
        vacuum_analyze_once(url)
        info.update(
            events=args.events,
            end=end.isoformat(),
            span_seconds=(timedelta(days=6, hours=23)).total_seconds(),
            created=datetime.now(UTC).isoformat(),
        )
        describe(url, info)
        infos[how] = info
        print(f"{how}: {time.monotonic() - started:,.1f} s {json.dumps(info)}", flush=True)
        seeded[how] = read(url)
    problems = compare(seeded["migrated"], seeded["copied"])
    print(f"row counts: {seeded['copied']['counts']}")
    print(f"load {loadavg()}")
    for problem in problems:
        print(f"DIFFERENT {problem}")
    if not problems:
        print(f"the same: {args.events:,} events, every column, partition, index and migration")
    if not args.keep:
        for url in urls.values():
            drop_postgres(url)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
