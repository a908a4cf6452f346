"""Stored events for the benchmarks, written fast by raw SQL into the real schema, and cached.

    .venv/bin/python -m bench.seed --events 1000000   # fill var/bench-data/sqlite-1000000 once

Why raw SQL: going through the HTTP API at 1M takes minutes, and importing the app's private
functions would break while modules move. The rows are exactly what `events.ingest` writes
(read `events/models.py` and `events/ingest.py`):

- `events_event` (id, occurred, received, event, resource_id, resource, related, payload,
  follows): ids as 32 hex digits on SQLite (uuid on PostgreSQL), datetimes as Django stores them
  (naive UTC `YYYY-MM-DD HH:MM:SS[.ffffff]` on SQLite, timestamptz on PostgreSQL), JSON as text;
- `events_eventresource` (event_id, occurred, resource_id, role, labels): one row for the
  resource (role "") and one per related resource;
- `events_eventcount` (the per-minute and per-hour rollups) rebuilt from the events by one
  GROUP BY, as the write path would have kept them.

The raw SQL is written for the schema at `SEED_MIGRATION`: the store is migrated to that point,
seeded, and then migrated to the latest schema, like an existing deployment being upgraded; so a
later migration that adds derived tables (a label index, a text index) backfills them, and the
seed stays right without being rewritten. On SQLite `ANALYZE` is not run: a deployment that grew
to 1M never ran it either, unless the app does. On PostgreSQL the template is VACUUM ANALYZEd
once, as autovacuum does to any deployment's grown tables (`vacuum_analyze_once`).

Big PostgreSQL seeds (over LATEST_ABOVE events, or BENCH_PG_SEED=copy) skip that upgrade, which
takes hours at 10M (0009's backfill of `Event.search` runs row by row): `seed_postgres_latest`
writes the latest schema directly by COPY, secondary indexes dropped during the load and built
after, `search` computed by `events.text_search.search_text_of` as ingest computes it (the one
application import of the benchmarks). `bench.seed_check` shows both ways give the same store.

Caches: SQLite data dirs under `var/bench-data/sqlite-<N>/` (a run works on a copy, so the cache
stays untouched), PostgreSQL template databases `eventsite_bench_seed_<N>` (a run clones one).
Each holds `seed.json` (or a comment) with the count, the time span and when it was made. Runs
over cached data set a long retention, so the retention service does not prune aging events.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.common import ROOT, bench_env, events_over, fresh_postgres, manage

CACHE = ROOT / "var" / "bench-data"
SEED_MIGRATION = ("events", "0004_indexes_for_engine_and_roles")
SPAN = timedelta(days=6, hours=23)
LONG_RETENTION = {"EVENTSITE_EVENT_RETENTION": "3650d"}
BATCH = 5000

EVENT_SQL = (
    "INSERT INTO events_event (id, occurred, received, event, resource_id, resource, related, "
    "payload, follows) VALUES ({p}, {p}, {p}, {p}, {p}, {j}, {j}, {j}, {p})"
)
RESOURCE_SQL = (
    "INSERT INTO events_eventresource (event_id, occurred, resource_id, role, labels) "
    "VALUES ({p}, {p}, {p}, {p}, {j})"
)
ROLLUP_SQLITE = (
    "INSERT INTO events_eventcount (width, bucket, event, count, first, last) "
    "SELECT {width}, strftime('{fmt}', occurred), event, COUNT(*), MIN(occurred), MAX(occurred) "
    "FROM events_event GROUP BY 2, 3"
)
ROLLUP_POSTGRES = (
    "INSERT INTO events_eventcount (width, bucket, event, count, first, last) "
    "SELECT {width}, date_trunc('{unit}', occurred), event, COUNT(*), MIN(occurred), MAX(occurred) "
    "FROM events_event GROUP BY 2, 3"
)
# Settable connection PRAGMAs, read from a Django connection so raw writers use the same ones.
PRAGMAS = (
    "journal_mode",
    "synchronous",
    "temp_store",
    "cache_size",
    "journal_size_limit",
    "wal_autocheckpoint",
    "mmap_size",
    "busy_timeout",
    "foreign_keys",
    "cache_spill",
)


def sqlite_time(iso: str) -> str:
    """An ISO 8601 UTC time as Django stores it on SQLite (naive, space-separated)."""
    return iso.replace("T", " ").replace("+00:00", "")


def rows(events: list[dict], *, received: list[str], sqlite: bool) -> tuple[list, list]:
    """The `events_event` and `events_eventresource` rows for `events`, as the write path has them."""
    dumps = orjson.dumps
    event_rows, resource_rows = [], []
    for e, got in zip(events, received, strict=True):
        eid = e["id"].replace("-", "") if sqlite else e["id"]
        occurred = sqlite_time(e["occurred"]) if sqlite else e["occurred"]
        resource = e["resource"]
        rid = resource["prefect.resource.id"]
        resource_json = dumps(resource).decode()
        event_rows.append(
            (
                eid,
                occurred,
                got,
                e["event"],
                rid,
                resource_json,
                dumps(e["related"]).decode(),
                dumps(e["payload"]).decode(),
                None,
            )
        )
        resource_rows.append((eid, occurred, rid, "", resource_json))
        for r in e["related"]:
            resource_rows.append(
                (
                    eid,
                    occurred,
                    r["prefect.resource.id"],
                    r["prefect.resource.role"],
                    dumps(r).decode(),
                )
            )
    return event_rows, resource_rows


def received_for(events: list[dict], *, sqlite: bool) -> list[str]:
    """A `received` stamp per event: 0.1–1 s after it occurred (cheap and deterministic)."""
    out = []
    for e in events:
        at = datetime.fromisoformat(e["occurred"]) + timedelta(
            microseconds=100_000 + int(e["id"][-5:], 16) % 900_000
        )
        out.append(sqlite_time(at.isoformat()) if sqlite else at.isoformat())
    return out


# --- SQLite --------------------------------------------------------------------------------------


def django_pragmas(env: dict[str, str]) -> dict:
    """The PRAGMAs a Django connection of the app has (whatever sets them), and its BEGIN mode."""
    code = (
        "import json; from django.db import connection; connection.ensure_connection(); "
        "c = connection.connection.cursor(); "
        f"p = {{k: c.execute('PRAGMA ' + k).fetchone()[0] for k in {list(PRAGMAS)!r}}}; "
        "p['_begin'] = (connection.settings_dict.get('OPTIONS') or {}).get('transaction_mode') or 'DEFERRED'; "
        "print(json.dumps(p))"
    )
    return json.loads(manage("shell", "-c", code, env=env).strip().splitlines()[-1])


def sqlite_connect(path: Path, pragmas: dict) -> sqlite3.Connection:
    """A raw connection configured like the app's (same PRAGMAs), in autocommit mode."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    for key in PRAGMAS:
        if key in pragmas:
            db.execute(f"PRAGMA {key}={pragmas[key]}")
    return db


def insert_sqlite(db: sqlite3.Connection, event_rows, resource_rows, *, begin: str) -> None:
    db.execute(f"BEGIN {begin}")
    db.executemany(EVENT_SQL.format(p="?", j="?"), event_rows)
    db.executemany(RESOURCE_SQL.format(p="?", j="?"), resource_rows)
    db.execute("COMMIT")


def rebuild_rollups_sqlite(db: sqlite3.Connection) -> None:
    db.execute("BEGIN")
    db.execute("DELETE FROM events_eventcount")
    db.execute(ROLLUP_SQLITE.format(width=60, fmt="%Y-%m-%d %H:%M:00"))
    db.execute(ROLLUP_SQLITE.format(width=3600, fmt="%Y-%m-%d %H:00:00"))
    db.execute("COMMIT")


def migrate_to_seed_point(env: dict[str, str]) -> None:
    try:
        manage("migrate", *SEED_MIGRATION, "-v0", env=env)
    except RuntimeError as exc:  # the migration was renamed or squashed: seed the latest schema
        print(f"  (cannot migrate to {SEED_MIGRATION}: {exc}; seeding the latest schema)")
        manage("migrate", "-v0", env=env)


def seed_sqlite(data_dir: Path, total: int, *, end: datetime) -> dict:
    env = bench_env(data_dir=str(data_dir))
    migrate_to_seed_point(env)
    pragmas = django_pragmas(env)
    db = sqlite_connect(data_dir / "eventsite.sqlite3", pragmas)
    if db.execute("SELECT COUNT(*) FROM events_event").fetchone()[0]:
        raise RuntimeError(f"{data_dir} already holds events")
    started = time.monotonic()
    batch: list[dict] = []
    done = 0
    for event in events_over(total, span=SPAN, end=end, seed=11):
        batch.append(event)
        if len(batch) == BATCH:
            insert_sqlite(
                db,
                *rows(batch, received=received_for(batch, sqlite=True), sqlite=True),
                begin="IMMEDIATE",
            )
            done += len(batch)
            batch = []
            if done % 100_000 == 0:
                print(
                    f"  seeded {done:,} ({done / (time.monotonic() - started):,.0f}/s)", flush=True
                )
    if batch:
        insert_sqlite(
            db,
            *rows(batch, received=received_for(batch, sqlite=True), sqlite=True),
            begin="IMMEDIATE",
        )
    rebuild_rollups_sqlite(db)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    manage("migrate", "-v0", env=env)
    return {"seconds": round(time.monotonic() - started, 1)}


def cached_sqlite(total: int, *, migrate: bool = True) -> Path:
    """The cached SQLite data dir holding `total` seeded events (made on first use)."""
    path = CACHE / f"sqlite-{total}"
    meta = path / "seed.json"
    if meta.exists():
        if migrate:
            # Bring the cache to the latest schema once (later runs copy it already migrated).
            manage("migrate", "-v0", env=bench_env(data_dir=str(path)))
        return path
    shutil.rmtree(path, ignore_errors=True)
    building = CACHE / f".building-sqlite-{total}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    end = datetime.now(UTC) - timedelta(minutes=1)
    print(f"seeding {total:,} events into {building.relative_to(ROOT)} (once; cached)…", flush=True)
    info = seed_sqlite(building, total, end=end)
    info.update(
        events=total,
        end=end.isoformat(),
        span_seconds=SPAN.total_seconds(),
        created=datetime.now(UTC).isoformat(),
    )
    (building / "seed.json").write_text(json.dumps(info, indent=2) + "\n")
    building.rename(path)
    print(f"  seeded in {info['seconds']:.0f} s", flush=True)
    return path


def sqlite_copy(total: int) -> tuple[dict[str, str], dict]:
    """A temporary copy of the cached data dir: its environment and the seed's metadata.

    With EVENTSITE_BENCH_TEMPLATE set (a branch whose migrations change the schema), the shared
    cache is left as it is and the copy is migrated instead, timed: what an upgrade costs."""
    own = os.environ.get("EVENTSITE_BENCH_TEMPLATE")
    cache = cached_sqlite(total, migrate=not own)
    copy = Path(tempfile.mkdtemp(prefix=f"eventsite-bench-{total}-"))
    for name in ("eventsite.sqlite3", "secret_key", "seed.json"):
        if (cache / name).exists():
            shutil.copyfile(cache / name, copy / name)
    env = bench_env(data_dir=str(copy))
    info = json.loads((cache / "seed.json").read_text())
    if own:
        started = time.monotonic()
        manage("migrate", "-v0", env=env)
        info["copy_migrate_seconds"] = round(time.monotonic() - started, 1)
        print(f"  migrated the copy in {info['copy_migrate_seconds']} s", flush=True)
    return env, info


# --- PostgreSQL ----------------------------------------------------------------------------------


def seed_postgres(url: str, total: int, *, end: datetime) -> dict:
    import psycopg

    env = bench_env(url)
    migrate_to_seed_point(env)
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        batch: list[dict] = []

        def flush(batch: list[dict]) -> None:
            event_rows, resource_rows = rows(
                batch, received=received_for(batch, sqlite=False), sqlite=False
            )
            with conn.cursor() as cur:
                cur.executemany(EVENT_SQL.format(p="%s", j="%s::jsonb"), event_rows)
                cur.executemany(RESOURCE_SQL.format(p="%s", j="%s::jsonb"), resource_rows)
            conn.commit()

        done = 0
        for event in events_over(total, span=SPAN, end=end, seed=11):
            batch.append(event)
            if len(batch) == BATCH:
                flush(batch)
                done += len(batch)
                batch = []
                if done % 100_000 == 0:
                    print(
                        f"  seeded {done:,} ({done / (time.monotonic() - started):,.0f}/s)",
                        flush=True,
                    )
        if batch:
            flush(batch)
        conn.execute("DELETE FROM events_eventcount")
        conn.execute(ROLLUP_POSTGRES.format(width=60, unit="minute"))
        conn.execute(ROLLUP_POSTGRES.format(width=3600, unit="hour"))
        conn.commit()
    manage("migrate", "-v0", env=env)
    return {"seconds": round(time.monotonic() - started, 1)}


# --- PostgreSQL at the latest schema, by COPY (big seeds) ---------------------------------------

# Above this many events a PostgreSQL template is written at the latest schema by COPY
# (`seed_postgres_latest`) rather than at SEED_MIGRATION and migrated: migration 0009's per-row
# backfill of `Event.search` runs at ~220 events/s under load, hours at 10M. BENCH_PG_SEED=copy
# or =migrate chooses either way for any size.
LATEST_ABOVE = 1_000_000
COPY_BATCH = 50_000
# Free disk the seed leaves to others (it stops with an error below it).
MIN_FREE_GB = 25
# Connections building one index's partitions at once (the machine has 2 cores).
INDEX_WORKERS = int(os.environ.get("BENCH_SEED_INDEX_WORKERS", "2"))
INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (?:ONLY )?(\S+) (USING .*)$")
PARENTS = ("events_event", "events_eventresource", "events_eventid")
EVENT_COLUMNS = (
    "id, occurred, received, event, resource_id, resource, related, payload, follows, search"
)
# Index definitions from the catalog: every index of the three tables but their primary keys.
INDEXES_SQL = (
    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary ORDER BY c.relname"
)
DAYS_CODE = (
    "from datetime import date; from events.partitions import ensure_days; "
    "ensure_days(date.fromisoformat({day!r}), back={back})"
)
NAME_CODE = (
    "from django.db import connection; from events.partitions import name_child_indexes; "
    "c = connection.cursor(); [name_child_indexes(c, t) for t in ('events_event', 'events_eventresource')]"
)


def latest_seed(total: int) -> bool:
    """Whether a PostgreSQL template of `total` events is seeded at the latest schema by COPY."""
    choice = os.environ.get("BENCH_PG_SEED", "")
    if choice not in ("", "copy", "migrate"):
        raise SystemExit(f"BENCH_PG_SEED is copy or migrate, not {choice!r}")
    return choice == "copy" or (not choice and total > LATEST_ABOVE)


def free_gb() -> float:
    """What `df` calls available on / (the root-reserved blocks left out)."""
    stat = os.statvfs("/")
    return stat.f_bavail * stat.f_frsize / 1e9


def latest_rows(events: list[dict], received: list[str]) -> tuple[list, list, list]:
    """`rows` at the latest schema: events with their `search` text as ingest computes it
    (`events.text_search.search_text_of`), resource rows, and the ids of idempotent ingest."""
    from events.text_search import search_text_of

    event_rows, resource_rows = rows(events, received=received, sqlite=False)
    event_rows = [
        (*row, search_text_of(e["event"], e["resource"], e["related"], e["payload"]))
        for row, e in zip(event_rows, events, strict=True)
    ]
    return event_rows, resource_rows, [(row[0], row[1]) for row in event_rows]


def seed_postgres_latest(url: str, total: int, *, end: datetime) -> dict:
    """Seed `total` events straight into the latest schema: migrate the empty database (which
    marks every migration applied and partitions the log), make the day partitions the seed spans
    (`events.partitions.ensure_days`), drop the secondary indexes, COPY the rows, build the indexes
    again from their catalog definitions (each timed), rebuild the rollups, name the partitions'
    indexes as the app does. The caller runs VACUUM ANALYZE (`vacuum_analyze_once`)."""
    import psycopg

    env = bench_env(url)
    timings: dict = {"mode": "copy at the latest schema"}
    step = time.monotonic()
    manage("migrate", "-v0", env=env)
    start = end - SPAN
    back = (end.date() - start.date()).days
    manage("shell", "-c", DAYS_CODE.format(day=end.date().isoformat(), back=back), env=env)
    timings["migrate_and_partitions_s"] = round(time.monotonic() - step, 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = []
        for table in PARENTS:
            for name, definition in conn.execute(INDEXES_SQL, [table]).fetchall():
                indexes.append((name, definition))
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        print(f"  dropped {len(indexes)} secondary indexes; loading by COPY…", flush=True)
        started = step = time.monotonic()
        batch: list[dict] = []
        done = 0

        def load(batch: list[dict]) -> None:
            if free_gb() < MIN_FREE_GB:
                raise RuntimeError(f"under {MIN_FREE_GB} GB free on /: seed stopped at {done:,}")
            event_rows, resource_rows, id_rows = latest_rows(
                batch, received_for(batch, sqlite=False)
            )
            with conn.transaction(), conn.cursor() as cur:
                for sql, data in (
                    (f"COPY events_event ({EVENT_COLUMNS}) FROM STDIN", event_rows),
                    (
                        "COPY events_eventresource (event_id, occurred, resource_id, role, labels) "
                        "FROM STDIN",
                        resource_rows,
                    ),
                    ("COPY events_eventid (id, occurred) FROM STDIN", id_rows),
                ):
                    with cur.copy(sql) as copy:
                        for row in data:
                            copy.write_row(row)

        for event in events_over(total, span=SPAN, end=end, seed=11):
            batch.append(event)
            if len(batch) == COPY_BATCH:
                load(batch)
                done += len(batch)
                batch = []
                if done % 500_000 == 0:
                    print(
                        f"  copied {done:,} ({done / (time.monotonic() - started):,.0f}/s, "
                        f"{free_gb():,.0f} GB free)",
                        flush=True,
                    )
        if batch:
            load(batch)
        seconds = time.monotonic() - started
        timings["copy_s"] = round(seconds, 1)
        timings["copy_events_per_s"] = round(total / seconds)
        print(f"  copied {total:,} in {seconds:,.0f} s ({total / seconds:,.0f}/s)", flush=True)
        timings["index_s"] = {}
        for name, definition in indexes:
            step = time.monotonic()
            build_index(url, conn, definition)
            timings["index_s"][name] = round(time.monotonic() - step, 1)
            print(f"  index {name}: {timings['index_s'][name]:,.0f} s", flush=True)
        step = time.monotonic()
        with conn.transaction():
            conn.execute("DELETE FROM events_eventcount")
            conn.execute(ROLLUP_POSTGRES.format(width=60, unit="minute"))
            conn.execute(ROLLUP_POSTGRES.format(width=3600, unit="hour"))
        timings["rollups_s"] = round(time.monotonic() - step, 1)
    manage("shell", "-c", NAME_CODE, env=env)
    manage("migrate", "--check", "-v0", env=env)  # nothing left to apply
    timings["seconds"] = round(time.monotonic() - started, 1)
    return timings


def build_index(url: str, conn, definition: str) -> None:
    """Build one index from its catalog definition. On a partitioned table: the parent's index
    ON ONLY the parent, each partition's own built by INDEX_WORKERS connections at once, then
    attached, named `<index>_<partition suffix>` as `events.partitions.name_child_indexes` names
    them (what one CREATE INDEX on the parent makes, one partition after the other)."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    match = INDEX_DEF.match(definition)
    if match is None:
        raise RuntimeError(f"cannot rebuild index: {definition}")
    unique, name, table, using = match.groups()
    parts = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY pg_relation_size(c.oid) DESC",
        [table],
    ).fetchall()
    if not parts:
        conn.execute(definition)
        return
    conn.execute(f"CREATE {unique or ''}INDEX {name} ON ONLY {table} {using}")
    bare = table.rpartition(".")[2]

    def child(part: str) -> str:
        index = f"{name}_{part.removeprefix(bare + '_')}"[:63]
        with psycopg.connect(url, autocommit=True) as own:
            own.execute("SET maintenance_work_mem = '1GB'")
            own.execute(f'CREATE {unique or ""}INDEX "{index}" ON "{part}" {using}')
        return index

    with ThreadPoolExecutor(INDEX_WORKERS) as pool:
        made = list(pool.map(child, [p for (p,) in parts]))
    for index in made:
        conn.execute(f'ALTER INDEX {name} ATTACH PARTITION "{index}"')


def seed_template(url: str, total: int, *, end: datetime) -> dict:
    """Seed the (fresh) database of `url` with `total` events the way `latest_seed` says;
    VACUUM ANALYZE it once; return the seed's metadata (stored as the database's comment)."""
    if latest_seed(total):
        info = seed_postgres_latest(url, total, end=end)
    else:
        info = seed_postgres(url, total, end=end)
    step = time.monotonic()
    vacuum_analyze_once(url)
    info["vacuum_analyze_s"] = round(time.monotonic() - step, 1)
    info.update(
        events=total,
        end=end.isoformat(),
        span_seconds=SPAN.total_seconds(),
        created=datetime.now(UTC).isoformat(),
    )
    return info


def describe(url: str, info: dict) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        text = json.dumps(info).replace("'", "''")
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{text}'")


def postgres_clone(url: str, total: int) -> tuple[dict[str, str], dict]:
    """Recreate the database of `url` from the cached template holding `total` seeded events."""
    import psycopg

    base, _, _ = url.rpartition("/")
    template = f"eventsite_bench_seed_{total}"
    if own := os.environ.get("EVENTSITE_BENCH_TEMPLATE"):
        # A branch whose migrations change the schema keeps its own copy of the shared template.
        template = own_template(base, f"{own}_{total}", template)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [template],
        ).fetchone()
    if row is None or not row[0]:
        end = datetime.now(UTC) - timedelta(minutes=1)
        print(f"seeding {total:,} events into PostgreSQL {template} (once; cached)…", flush=True)
        fresh_postgres(f"{base}/{template}")
        info = seed_template(f"{base}/{template}", total, end=end)
        describe(f"{base}/{template}", info)
        print(f"  seeded in {info['seconds']:.0f} s", flush=True)
    else:
        info = json.loads(row[0])
        manage("migrate", "-v0", env=bench_env(f"{base}/{template}"))
    vacuum_analyze_once(f"{base}/{template}")
    fresh_postgres(url, template=template)
    return bench_env(url), info


def seeded_in_place(url: str, total: int) -> tuple[dict[str, str], dict]:
    """The database of `url` itself as the seeded store (no template, no clone: a 10M store has no
    room for a second copy). Seeded unless its comment says it holds `total` seeded events; a run
    that changes it (ingest, retention) drops it after (`bench.partitions --in-place`)."""
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    info = json.loads(row[0]) if row and row[0] else {}
    if info.get("events") != total:
        end = datetime.now(UTC) - timedelta(minutes=1)
        print(f"seeding {total:,} events into PostgreSQL {name} (in place)…", flush=True)
        fresh_postgres(url)
        info = seed_template(url, total, end=end)
        describe(url, info)
        print(f"  seeded in {info['seconds']:.0f} s", flush=True)
    else:
        manage("migrate", "-v0", env=bench_env(url))
    return bench_env(url), info


def own_template(base: str, name: str, shared: str) -> str:
    """`name`, made once as a copy of the seeded template `shared` (with its seed comment)."""
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        comment = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [shared],
        ).fetchone()
        if not exists and comment and comment[0]:
            print(f"copying the seeded template {shared} to {name} (once)…", flush=True)
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{shared}"')
            conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{comment[0]}'")
    return name


def vacuum_analyze_once(url: str) -> None:
    """What autovacuum does to a deployment's freshly grown tables within a minute: planner
    statistics, hint bits and the visibility map. A clone of the template copies all three
    (pg_statistic is a catalog of the database); autovacuum would not visit the clone, whose
    activity counters start at zero, so without this every PostgreSQL figure would be of a
    never-analyzed database, which no deployment is."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        (analyzed,) = conn.execute(
            "SELECT count(*) FROM pg_statistic WHERE starelid = 'events_event'::regclass"
        ).fetchone()
        if not analyzed:
            print("  VACUUM ANALYZE of the seeded template (once)…", flush=True)
            conn.execute("VACUUM ANALYZE")


def seeded_env(total: int) -> tuple[dict[str, str], dict]:
    """A store holding `total` seeded events on the backend chosen by the environment."""
    url = os.environ.get("EVENTSITE_DATABASE_URL")
    if url:
        from bench.common import flush_redis

        flush_redis()
        return postgres_clone(url, total)
    return sqlite_copy(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="PostgreSQL: seed the database of EVENTSITE_DATABASE_URL itself (no template)",
    )
    args = parser.parse_args()
    if args.in_place:
        env, info = seeded_in_place(os.environ["EVENTSITE_DATABASE_URL"], args.events)
    elif os.environ.get("EVENTSITE_DATABASE_URL"):
        env, info = postgres_clone(os.environ["EVENTSITE_DATABASE_URL"], args.events)
    else:
        path = cached_sqlite(args.events)
        info = json.loads((path / "seed.json").read_text())
        print(path)
    print(json.dumps(info))


if __name__ == "__main__":
    sys.exit(main())
