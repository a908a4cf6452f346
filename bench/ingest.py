"""Ingest benchmark (a): realistic events through POST /api/events, batches of 500, 4 clients.

Prints events/s from the first send until the last event is queryable, how many were stored, the
server's peak RSS, and the raw `executemany` figure for the same rows and schema.

    .venv/bin/python bench/ingest.py [--events 100000] [--database-url postgresql://…/bench]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from bench.common import Server, bench_env, events_over, fresh_postgres, manage


def rest(total: int, *, batch: int, clients: int, database_url: str | None) -> dict:
    env = bench_env(fresh_postgres(database_url) if database_url else None)
    server = Server(env)
    try:
        events = list(events_over(total, span=timedelta(hours=1)))
        bodies = [orjson.dumps(events[i : i + batch]) for i in range(0, total, batch)]
        errors: list[str] = []

        def client(mine: list[bytes]) -> None:
            with httpx.Client(headers=server.headers, timeout=120) as http:
                for body in mine:
                    response = http.post(f"{server.url}/api/events", content=body)
                    if response.status_code != 204:
                        errors.append(f"{response.status_code} {response.text[:200]}")

        threads = [
            threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        # Queryable when the request returns: count right away, no waiting.
        page = httpx.post(
            f"{server.url}/api/events/filter",
            headers=server.headers,
            content=orjson.dumps(
                {
                    # Count what was sent, not the audit event of the bench's own token.
                    "filter": {
                        "occurred": {"since": "2000-01-01T00:00:00Z"},
                        "event": {"exclude_prefix": ["prefect-cloud."]},
                    },
                    "limit": 1,
                }
            ),
            timeout=120,
        ).json()
        return {
            "rate": total / elapsed,
            "stored": page["total"],
            "errors": errors[:3],
            "rss": server.peak_rss_mb(),
        }
    finally:
        server.stop()


def raw_executemany(total: int, *, batch: int) -> float:
    """The same rows into a fresh SQLite file with our schema, by plain executemany."""
    data_dir = tempfile.mkdtemp(prefix="eventsite-raw-")
    manage("migrate", "-v0", env=bench_env(data_dir=data_dir))
    db = sqlite3.connect(Path(data_dir) / "eventsite.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    events = list(events_over(total, span=timedelta(hours=1)))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    started = time.perf_counter()
    for i in range(0, total, batch):
        chunk = events[i : i + batch]
        event_rows, resource_rows = [], []
        for e in chunk:
            eid = e["id"].replace("-", "")
            occurred = e["occurred"].replace("T", " ").replace("+00:00", "")
            event_rows.append(
                (
                    eid,
                    occurred,
                    now,
                    e["event"],
                    e["resource"]["prefect.resource.id"],
                    orjson.dumps(e["resource"]).decode(),
                    orjson.dumps(e["related"]).decode(),
                    orjson.dumps(e["payload"]).decode(),
                    None,
                )
            )
            resource_rows.append(
                (
                    eid,
                    occurred,
                    e["resource"]["prefect.resource.id"],
                    "",
                    orjson.dumps(e["resource"]).decode(),
                )
            )
            for r in e["related"]:
                resource_rows.append(
                    (
                        eid,
                        occurred,
                        r["prefect.resource.id"],
                        r["prefect.resource.role"],
                        orjson.dumps(r).decode(),
                    )
                )
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events_event (id, occurred, received, event, resource_id, resource, related, payload, follows) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            event_rows,
        )
        db.executemany(
            "INSERT INTO events_eventresource (event_id, occurred, resource_id, role, labels) VALUES (?, ?, ?, ?, ?)",
            resource_rows,
        )
        db.execute("COMMIT")
    return total / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--database-url", help="a PostgreSQL URL whose database is recreated for the run"
    )
    parser.add_argument("--skip-raw", action="store_true")
    args = parser.parse_args()

    where = "PostgreSQL" if args.database_url else "SQLite"
    result = rest(
        args.events, batch=args.batch, clients=args.clients, database_url=args.database_url
    )
    print(
        f"ingest (a) REST, {where}: {args.events:,} events, batches of {args.batch}, {args.clients} clients"
    )
    print(
        f"  {result['rate']:8,.0f} events/s first send → last queryable   stored {result['stored']:,} of {args.events:,}"
    )
    print(f"  serve peak RSS {result['rss']:.0f} MB")
    if result["errors"]:
        print(f"  errors: {result['errors']}")
    if not args.database_url and not args.skip_raw:
        raw = raw_executemany(args.events, batch=args.batch)
        print(
            f"  raw executemany into the same SQLite schema: {raw:8,.0f} events/s  → eventsite reaches {result['rate'] / raw:.0%} of it"
        )


if __name__ == "__main__":
    main()
