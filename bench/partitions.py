"""PostgreSQL's day-partitioned log at scale (issue 14 item 4): conversion, ingest, reads, retention.

    EVENTSITE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/partitions_bench \\
    EVENTSITE_BENCH_TEMPLATE=partitions EVENTSITE_REDIS_URL=redis://127.0.0.1:6379/8 \\
        .venv/bin/python -m bench.partitions --events 10000000 [--ingest 20000] [--repeat 9]

1. Conversion: migration 0010 run over the seeded template (`bench/seed.py`: seeded at 0004 and
   migrated to the latest schema, so a template seeded by another branch is still unpartitioned).
   Timed only when the template is not partitioned yet; later runs say so. With
   `EVENTSITE_BENCH_TEMPLATE` the template is this branch's own copy.
2. A clone of the template and `serve` on it (engine on, long retention):
   - ingest: `--ingest` new events (occurred now) in batches of 500 from 4 clients through
     `POST /api/events`, into the big partitioned log;
   - reads: the newest page unfiltered, a label filter and a text search over the 7 days (the
     cases of `bench/query.py`), median of `--repeat` requests after a warm-up.
3. Retention: `events.retention.prune` dropping the oldest day (partial: the seed starts
   mid-day), then the next, whole day, each timed in a `manage.py shell`; with the number of
   events removed. This is the whole retention pass (partitions made ahead, the default
   partition's DELETE, the rollups), not only the DROP.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import datetime, timedelta

import httpx
import orjson

from bench.common import (
    Figures,
    Server,
    bench_env,
    drop_postgres,
    events_over,
    flush_redis,
    manage,
    post_batches,
)
from bench.query import api_cases, timed
from bench.seed import LONG_RETENTION, own_template, seeded_env, seeded_in_place

READS = ("newest page, unfiltered", "label exact", "text")

SIZE_SQL = (
    "SELECT pg_size_pretty(pg_database_size(current_database())), "
    "(SELECT count(*) FROM pg_inherits WHERE inhparent = 'events_event'::regclass)"
)


def shell(env: dict[str, str], code: str) -> dict:
    """Run `code` in `manage.py shell`; it prints one JSON line last."""
    return json.loads(manage("shell", "-c", code, env=env).strip().splitlines()[-1])


def template_env(url: str, total: int) -> dict[str, str]:
    base, _, _ = url.rpartition("/")
    own = os.environ.get("EVENTSITE_BENCH_TEMPLATE")
    name = f"{own}_{total}" if own else f"eventsite_bench_seed_{total}"
    return bench_env(f"{base}/{name}")


def converted(env: dict[str, str]) -> bool:
    return shell(
        env,
        "import json; from django.db import connection; c = connection.cursor(); "
        "c.execute(\"SELECT relkind FROM pg_class WHERE oid = to_regclass('events_event')\"); "
        "r = c.fetchone(); print(json.dumps(bool(r) and r[0] == 'p'))",
    )


def convert(figures: Figures, url: str, total: int) -> None:
    """Time migration 0010 over the template, if it still has to run."""
    base = url.rpartition("/")[0]
    if own := os.environ.get("EVENTSITE_BENCH_TEMPLATE"):
        own_template(base, f"{own}_{total}", f"eventsite_bench_seed_{total}")
    env = template_env(url, total)
    try:
        if converted(env):
            figures.say("conversion: the template is already partitioned (timed on its first run)")
            return
    except (RuntimeError, json.JSONDecodeError):
        return  # no template yet: seeding makes one at the latest schema
    started = time.perf_counter()
    manage("migrate", "-v0", env=env)
    seconds = time.perf_counter() - started
    figures["conversion_seconds"] = round(seconds, 1)
    figures.say(f"conversion (migrate to 0010 over {total:,} events): {seconds:,.1f} s")


def ingest(figures: Figures, server: Server, count: int, batch: int = 500, clients: int = 4):
    events = list(events_over(count, span=timedelta(minutes=1), seed=5))
    bodies = [orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch)]
    seconds, errors = post_batches(server, bodies, clients)
    assert not errors, errors[:3]
    figures["ingest_rate"] = round(count / seconds)
    figures.say(
        f"ingest: {count:,} events through POST /api/events ({clients} clients, batches of "
        f"{batch}): {count / seconds:,.0f} events/s"
    )


def reads(figures: Figures, server: Server, end: datetime, repeat: int) -> None:
    cases = api_cases(end)
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=600) as api:
        for name in READS:
            path, filter_json = cases[name]
            times, response = timed(
                lambda path=path, f=filter_json: api.post(path, json={"filter": f, "limit": 50}),
                repeat,
            )
            assert response.status_code == 200, (name, response.status_code, response.text[:300])
            median = statistics.median(times)
            figures[f"read_ms:{name}"] = round(median, 1)
            figures.say(
                f"  {name:28} median {median:8.1f} ms  (total {response.json().get('total'):,})"
            )


RETIRE = """
import json, time
from events import partitions
from events.retention import prune
days = partitions.day_partitions()
out = []
for name, start, end in days[:2]:
    started = time.perf_counter()
    gone = prune(before=end)
    out.append([name, gone, round((time.perf_counter() - started) * 1000, 1)])
print(json.dumps(out))
"""


def retention(figures: Figures, env: dict[str, str]) -> None:
    for name, gone, ms in shell(env, RETIRE):
        figures[f"retention_ms:{name}"] = ms
        figures.say(f"retention: {name} dropped, {gone:,} events, {ms:,.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ingest", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="run on the database of EVENTSITE_DATABASE_URL itself, seeded there (no template, "
        "no clone: room for one copy only), and drop it at the end",
    )
    parser.add_argument("--keep", action="store_true", help="with --in-place: keep the database")
    args = parser.parse_args()
    url = os.environ.get("EVENTSITE_DATABASE_URL")
    if not url:
        raise SystemExit("PostgreSQL only: set EVENTSITE_DATABASE_URL (SQLite is not partitioned)")
    figures = Figures("partitions")
    if args.in_place:
        flush_redis()
        env, seed = seeded_in_place(url, args.events)
        figures.say("in place: the seeded database itself (no template, no clone)")
    else:
        convert(figures, url, args.events)
        env, seed = seeded_env(args.events)
    figures["seed"] = seed
    if "copy_events_per_s" in seed:
        figures.say(
            f"seed (COPY at the latest schema, {seed['created']}): {seed['seconds']:,.0f} s, "
            f"COPY {seed['copy_events_per_s']:,} events/s, indexes "
            f"{sum(seed['index_s'].values()):,.0f} s, VACUUM ANALYZE {seed['vacuum_analyze_s']:,.0f} s"
        )
    end = datetime.fromisoformat(seed["end"])
    server = Server(env, extra_env=LONG_RETENTION)
    try:
        size, parts = shell(
            server.env,
            "import json; from django.db import connection; c = connection.cursor(); "
            f'c.execute("{SIZE_SQL}"); print(json.dumps(list(c.fetchone())))',
        )
        figures.update(events=args.events, database_size=size, partitions=parts)
        figures.say(f"{args.events:,} seeded events, database {size}, {parts} partitions")
        figures.say(f"reads over HTTP (newest page of 50 with its total, {args.repeat} requests):")
        reads(figures, server, end, args.repeat)
        ingest(figures, server, args.ingest)
    finally:
        server.remove()
    retention(figures, env)
    figures.finish()
    if args.in_place and not args.keep:
        drop_postgres(url)  # ingested into and pruned: not the seeded store any more


if __name__ == "__main__":
    main()
