"""Ingest: events/s through `POST /api/events` into `serve` (engine on), beside the raw limit.

    .venv/bin/python -m bench.ingest [--events 100000] [--batch 500] [--clients 4] [--automations 0]

1. REST: realistic events (2–5 labels, 1–3 related, ~300-byte payload) in batches of 500 from 4
   client threads into a real `serve` with its automation engine running (and `--automations`
   enabled automations created through the API, none by default). The rate runs from the first
   send until the last response; the events are then counted through the API (queryable when
   the request returns). Peak RSS of `serve` (VmHWM) and, on SQLite, the WAL's peak size.
2. The raw insert limit of the same schema: the same rows, in the same batches, by plain
   `executemany` into `events_event` (with its search text, so its trigram index is paid too) and
   `events_eventresource` of a freshly migrated store, on a
   connection with the PRAGMAs (and BEGIN mode) a Django connection of the app has, one
   transaction per batch, rows built before the clock starts (so JSON encoding is not counted:
   earlier versions of this bench counted it, which made the limit lower); then again
   with the per-minute/per-hour rollup upsert the write path also does. The REST rate is reported
   as a share of the first (issue 14: ≥ 50 % on SQLite with the engine running).

The backend is the environment's (`EVENTSITE_DATABASE_URL` → PostgreSQL, recreated per run).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench.common import (
    Figures,
    Sampler,
    Server,
    bench_env,
    cpu_seconds,
    create_automations,
    drop_postgres,
    events_over,
    file_mb,
    fresh_postgres,
    manage,
    post_batches,
    server_env,
)
from bench.seed import (
    EVENT_SQL,
    RESOURCE_SQL,
    django_pragmas,
    rows,
    sqlite_connect,
    sqlite_time,
)
from events.text_search import search_text_of

ROLLUP_UPSERT = (
    "INSERT INTO events_eventcount (width, bucket, event, count, first, last) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (width, bucket, event) DO UPDATE SET "
    "count = events_eventcount.count + excluded.count, "
    "first = {least}(events_eventcount.first, excluded.first), "
    "last = {greatest}(events_eventcount.last, excluded.last)"
)


def postgres_backend_cpu() -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the bench's database (same machine)."""
    import psycopg

    url = os.environ.get("EVENTSITE_DATABASE_URL")
    if not url:
        return {}
    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchall()
        ]
    out = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            out[pid] = cpu_seconds(pid)
    return out


def rest(events: list[dict], *, batch: int, clients: int, automations: int) -> dict:
    server = Server(server_env())
    try:
        made = create_automations(server, automations) if automations else {}
        bodies = [orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch)]
        wal = server.data_dir / "eventsite.sqlite3-wal"
        with Sampler(lambda: file_mb(wal), 0.2) as wal_size, Sampler(server.rss_mb, 0.2) as rss:
            cpu_before = server.cpu_seconds()
            backends_before = postgres_backend_cpu()
            clients_before = time.process_time()
            elapsed, errors = post_batches(server, bodies, clients)
            cpu = server.cpu_seconds() - cpu_before
            clients_cpu = time.process_time() - clients_before
            # A backend that started during the load counts from zero; one that ended is missed.
            backends_cpu = sum(
                used - backends_before.get(pid, 0.0) for pid, used in postgres_backend_cpu().items()
            )
        page = httpx.post(
            f"{server.url}/api/events/filter",
            headers=server.headers,
            json={
                # What was sent: not the audit event of the bench's token, nor automation events.
                "filter": {
                    "occurred": {"since": "2000-01-01T00:00:00Z"},
                    "event": {"exclude_prefix": ["prefect-cloud.", "prefect.automation."]},
                },
                "limit": 1,
            },
            timeout=300,
        ).json()
        return {
            "rate": len(events) / elapsed,
            "seconds": elapsed,
            "stored": page["total"],
            "errors": errors[:3],
            "error_count": len(errors),
            "peak_rss_mb": server.peak_rss_mb(),
            "rss_sampled_peak_mb": rss.peak,
            "wal_peak_mb": wal_size.peak if not os.environ.get("EVENTSITE_DATABASE_URL") else None,
            "serve_cpu_seconds": cpu,
            "clients_cpu_seconds": clients_cpu,
            "postgres_cpu_seconds": backends_cpu
            if os.environ.get("EVENTSITE_DATABASE_URL")
            else None,
            "automations": made,
        }
    finally:
        server.remove()


def rollup_rows(event_rows: list[tuple], *, sqlite: bool) -> list[tuple]:
    """What `rollups.record` upserts for these rows: (width, bucket, name) → count, first, last."""
    groups: dict[tuple, list] = {}
    for row in event_rows:
        occurred, name = row[1], row[3]
        at = datetime.fromisoformat(occurred if sqlite else occurred).replace(tzinfo=UTC)
        for width in (60, 3600):
            seconds = int(at.timestamp())
            bucket = datetime.fromtimestamp(seconds - seconds % width, UTC)
            key = (width, bucket, name)
            group = groups.get(key)
            if group is None:
                groups[key] = [1, occurred, occurred]
            else:
                group[0] += 1
                group[1] = min(group[1], occurred)
                group[2] = max(group[2], occurred)
    out = []
    for (width, bucket, name), (n, lo, hi) in sorted(groups.items()):
        b = sqlite_time(bucket.isoformat()) if sqlite else bucket.isoformat()
        out.append((width, b, name, n, lo, hi))
    return out


# The seed's rows (for the schema before text search) and the search text the write path adds.
EVENT_SEARCH_SQL = EVENT_SQL.replace("follows)", "follows, search)").replace("{p})", "{p}, {p})")


def prepared(events: list[dict], *, batch: int, sqlite: bool) -> list[tuple]:
    """The batches' rows, built before the clock starts: the limit is the database's, not JSON's."""
    now = datetime.now(UTC).isoformat()
    received = sqlite_time(now) if sqlite else now
    out = []
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        event_rows, resource_rows = rows(chunk, received=[received] * len(chunk), sqlite=sqlite)
        event_rows = [
            (*row, search_text_of(e["event"], e["resource"], e["related"], e["payload"]))
            for row, e in zip(event_rows, chunk, strict=True)
        ]
        out.append((event_rows, resource_rows, rollup_rows(event_rows, sqlite=sqlite)))
    return out


def raw_sqlite(events: list[dict], *, batch: int, with_rollups: bool) -> float:
    data_dir = tempfile.mkdtemp(prefix="eventsite-raw-")
    env = bench_env(data_dir=data_dir)
    manage("migrate", "-v0", env=env)
    pragmas = django_pragmas(env)
    db = sqlite_connect(Path(data_dir) / "eventsite.sqlite3", pragmas)
    upsert = ROLLUP_UPSERT.format(p="?", least="MIN", greatest="MAX")
    batches = prepared(events, batch=batch, sqlite=True)
    started = time.perf_counter()
    for event_rows, resource_rows, rollups in batches:
        db.execute(f"BEGIN {pragmas['_begin']}")
        db.executemany(EVENT_SEARCH_SQL.format(p="?", j="?"), event_rows)
        db.executemany(RESOURCE_SQL.format(p="?", j="?"), resource_rows)
        if with_rollups:
            db.executemany(upsert, rollups)
        db.execute("COMMIT")
    rate = len(events) / (time.perf_counter() - started)
    db.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return rate


def raw_postgres(events: list[dict], *, batch: int, with_rollups: bool) -> float:
    import psycopg

    url = os.environ["EVENTSITE_DATABASE_URL"] + "_raw"
    fresh_postgres(url)
    try:
        manage("migrate", "-v0", env=bench_env(url))
        upsert = ROLLUP_UPSERT.format(p="%s", least="LEAST", greatest="GREATEST")
        batches = prepared(events, batch=batch, sqlite=False)
        with psycopg.connect(url) as conn:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
            started = time.perf_counter()
            for event_rows, resource_rows, rollups in batches:
                with conn.cursor() as cur:
                    cur.executemany(EVENT_SEARCH_SQL.format(p="%s", j="%s::jsonb"), event_rows)
                    cur.executemany(RESOURCE_SQL.format(p="%s", j="%s::jsonb"), resource_rows)
                    if with_rollups:
                        cur.executemany(upsert, rollups)
                conn.commit()
            return len(events) / (time.perf_counter() - started)
    finally:
        drop_postgres(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--automations", type=int, default=0)
    parser.add_argument("--skip-raw", action="store_true")
    args = parser.parse_args()

    figures = Figures("ingest")
    events = list(events_over(args.events, span=timedelta(hours=1)))
    result = rest(events, batch=args.batch, clients=args.clients, automations=args.automations)
    figures.say(
        f"ingest REST into serve (engine on, {args.automations} automations): {args.events:,} "
        f"events, batches of {args.batch}, {args.clients} clients"
    )
    figures.say(
        f"  {result['rate']:8,.0f} events/s first send → last response   stored "
        f"{result['stored']:,} of {args.events:,}   serve CPU {result['serve_cpu_seconds']:.1f} s"
    )
    per_event = 1e6 / args.events
    pg = (
        f"   PostgreSQL backends {result['postgres_cpu_seconds'] * per_event:.0f}"
        if result["postgres_cpu_seconds"] is not None
        else ""
    )
    figures.say(
        f"  CPU µs/event: serve {result['serve_cpu_seconds'] * per_event:.0f}{pg}   bench "
        f"clients {result['clients_cpu_seconds'] * per_event:.0f} (same 2 cores)"
    )
    wal = (
        f"   WAL peak {result['wal_peak_mb']:,.0f} MB" if result["wal_peak_mb"] is not None else ""
    )
    figures.say(f"  serve peak RSS {result['peak_rss_mb']:.0f} MB{wal}")
    if result["errors"]:
        figures.say(f"  {result['error_count']} failed requests, e.g. {result['errors']}")
    figures.update(
        rest_events_per_s=round(result["rate"]),
        rest_seconds=round(result["seconds"], 2),
        events=args.events,
        batch=args.batch,
        clients=args.clients,
        automations=args.automations,
        stored=result["stored"],
        failed_requests=result["error_count"],
        serve_peak_rss_mb=round(result["peak_rss_mb"], 1),
        serve_cpu_seconds=round(result["serve_cpu_seconds"], 2),
        serve_cpu_us_per_event=round(result["serve_cpu_seconds"] * per_event, 1),
        clients_cpu_us_per_event=round(result["clients_cpu_seconds"] * per_event, 1),
        postgres_cpu_us_per_event=result["postgres_cpu_seconds"]
        and round(result["postgres_cpu_seconds"] * per_event, 1),
        wal_peak_mb=result["wal_peak_mb"] and round(result["wal_peak_mb"], 1),
    )
    if not args.skip_raw:
        raw = raw_postgres if os.environ.get("EVENTSITE_DATABASE_URL") else raw_sqlite
        limit = raw(events, batch=args.batch, with_rollups=False)
        with_rollups = raw(events, batch=args.batch, with_rollups=True)
        figures.say(
            f"  raw executemany, same rows and schema (events + resource rows): {limit:8,.0f} "
            f"events/s → REST reaches {result['rate'] / limit:.0%} of it"
        )
        figures.say(
            f"  raw executemany + the rollup upsert:                             "
            f"{with_rollups:8,.0f} events/s → REST reaches {result['rate'] / with_rollups:.0%}"
        )
        figures.update(
            raw_events_per_s=round(limit),
            raw_with_rollups_events_per_s=round(with_rollups),
            rest_share_of_raw=round(result["rate"] / limit, 3),
            rest_share_of_raw_with_rollups=round(result["rate"] / with_rollups, 3),
        )
    figures.finish()


if __name__ == "__main__":
    main()
