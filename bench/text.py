"""Text search at scale, in the database: a newest page and a count, common and rare terms.

    .venv/bin/python -m bench.text [--events 1000000] [--repeat 9]

A freshly migrated store (SQLite in a temporary dir, or `EVENTSITE_DATABASE_URL` + "_text" on
PostgreSQL, recreated and dropped) gets N realistic events over 7 days (`events_over`) in
`events_event` only, with the search text the write path stores, by raw `executemany` (timed:
with the trigram index on PostgreSQL, and again without it, so its cost on inserts shows). Then
each query is the SQL `events.text_search.text_q` writes (instr on SQLite, LIKE on PostgreSQL,
whose planner may use the pg_trgm index), 24 h and 7 day windows; medians of `--repeat`.
Only the events table: this measures the text criterion itself, not HTTP or the page plan.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import bench_env, drop_postgres, events_over, fresh_postgres, loadavg, manage
from bench.seed import EVENT_SQL, django_pragmas, rows, sqlite_connect
from events.text_search import fold, search_text_of

SQL = EVENT_SQL.replace("follows)", "follows, search)").replace("{p})", "{p}, {p})")
TERMS = {
    "common (tag-3)": "tag-3",
    "rare (one resource id)": 'acme.order.4242"',
    "absent": "no-such-text-anywhere",
    "short (2 chars)": "zq",
}
BATCH = 500


def batches(total: int, *, sqlite: bool, end: datetime):
    now = end.isoformat()
    chunk = []
    for event in events_over(total, span=timedelta(days=7), end=end, seed=5):
        chunk.append(event)
        if len(chunk) == BATCH:
            yield _rows(chunk, sqlite=sqlite, received=now)
            chunk = []
    if chunk:
        yield _rows(chunk, sqlite=sqlite, received=now)


def _rows(chunk, *, sqlite, received):
    event_rows, _ = rows(chunk, received=[received] * len(chunk), sqlite=sqlite)
    return [
        (*row, search_text_of(e["event"], e["resource"], e["related"], e["payload"]))
        for row, e in zip(event_rows, chunk, strict=True)
    ]


def timed(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queries(term: str, *, sqlite: bool, since: str, until: str):
    match = "instr(search, ?) > 0" if sqlite else "search LIKE %s"
    value = fold(term) if sqlite else f"%{fold(term)}%"
    p = "?" if sqlite else "%s"
    where = f"occurred >= {p} AND occurred <= {p} AND {match}"
    page = f"SELECT id FROM events_event WHERE {where} ORDER BY occurred DESC, id DESC LIMIT 50"
    count = f"SELECT COUNT(*) FROM events_event WHERE {where}"
    return (page, [since, until, value]), (count, [since, until, value])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    url = os.environ.get("EVENTSITE_DATABASE_URL")
    sqlite = not url
    end = datetime.now(UTC) - timedelta(minutes=1)
    print(f"[text] {'SQLite' if sqlite else 'PostgreSQL'}, load average {loadavg()} at start")
    data_dir = tempfile.mkdtemp(prefix="eventsite-text-")
    try:
        if sqlite:
            env = bench_env(data_dir=data_dir)
            manage("migrate", "-v0", env=env)
            db = sqlite_connect(Path(data_dir) / "eventsite.sqlite3", django_pragmas(env))
            insert_sql, execute = SQL.format(p="?", j="?"), db.execute
        else:
            import psycopg

            url = url + "_text"
            fresh_postgres(url)
            manage("migrate", "-v0", env=bench_env(url))
            db = psycopg.connect(url, autocommit=True)
            db.execute("SET TIME ZONE 'UTC'")
            insert_sql, execute = SQL.format(p="%s", j="%s::jsonb"), db.execute
        inserted = 0
        started = time.perf_counter()
        for chunk in batches(args.events, sqlite=sqlite, end=end):
            execute("BEGIN")
            db.cursor().executemany(insert_sql, chunk)
            execute("COMMIT")
            inserted += len(chunk)
        seconds = time.perf_counter() - started
        print(f"  inserted {inserted:,} events in {seconds:.0f} s ({inserted / seconds:,.0f}/s)")
        if not sqlite:
            execute("VACUUM ANALYZE events_event")

        def fetch(sql, params):
            return db.execute(sql, params).fetchall()

        def count(sql, params):
            return fetch(sql, params)[0][0]

        fmt = (lambda d: d.strftime("%Y-%m-%d %H:%M:%S")) if sqlite else (lambda d: d.isoformat())
        for window in (timedelta(hours=24), timedelta(days=7)):
            since, until = fmt(end - window), fmt(end)
            for name, term in TERMS.items():
                page, total = queries(term, sqlite=sqlite, since=since, until=until)
                page_ms = timed(lambda page=page: fetch(*page), args.repeat)
                count_ms = timed(lambda total=total: count(*total), max(1, args.repeat // 3))
                print(
                    f"  {window.days or 1:>2} {'d' if window.days else 'h'}  {name:28} "
                    f"page {page_ms:8.1f} ms   count {count_ms:8.1f} ms "
                    f"({count(*total):,} matches)"
                )
        if not sqlite:
            # The index's cost on inserts: the same number of events again, without it.
            execute("TRUNCATE events_event CASCADE")
            execute("DROP INDEX event_search_trgm")
            started = time.perf_counter()
            for chunk in batches(min(args.events, 100_000), sqlite=False, end=end):
                execute("BEGIN")
                db.cursor().executemany(insert_sql, chunk)
                execute("COMMIT")
            n = min(args.events, 100_000)
            print(f"  without the trigram index: {n / (time.perf_counter() - started):,.0f}/s")
        db.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if not sqlite:
            drop_postgres(url)
    print(f"[text] load average {loadavg()} at end")


if __name__ == "__main__":
    main()
