"""The SQLite WAL under sustained ingest (issue 17, item 3): its peak size while 1M events load.

    .venv/bin/python -m bench.wal [--events 1000000] [--clients 2] [--batch 500]

Starts `serve` (engine on) on a fresh SQLite data dir and posts N events through
`POST /api/events` from 2 client threads in batches of 500, sampling the size of
`eventsite.sqlite3-wal` (and of the database, and the server's RSS) every 0.1 s. Reports the WAL's
peak, its size when the load ends and after `--after` idle seconds, the ingest rate, and a coarse
curve (every 5 % of the load) in the JSON. The request bodies are generated once and cached in
`var/bench-data/rest-<N>.jsonl` (regenerated when older than 5 days), so generating them does not
compete with the server for the CPU. SQLite only. Target: WAL peak ≤ 256 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import orjson

from bench.common import ROOT, Figures, Sampler, Server, events_over, file_mb, server_env

CACHE = ROOT / "var" / "bench-data"


def bodies_file(total: int, batch: int) -> Path:
    """One request body (a JSON array of `batch` events) per line, made once and reused."""
    path = CACHE / f"rest-{total}-{batch}.jsonl"
    if path.exists() and time.time() - path.stat().st_mtime < 5 * 86400:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"generating {total:,} events into {path.relative_to(ROOT)} (once; cached)…", flush=True)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as f:
        chunk: list[dict] = []
        for event in events_over(total, span=timedelta(hours=1), seed=23):
            chunk.append(event)
            if len(chunk) == batch:
                f.write(orjson.dumps(chunk) + b"\n")
                chunk = []
        if chunk:
            f.write(orjson.dumps(chunk) + b"\n")
    partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--after", type=float, default=10, help="idle seconds after the load")
    args = parser.parse_args()
    if os.environ.get("EVENTSITE_DATABASE_URL"):
        print("bench.wal measures SQLite's WAL; nothing to do on PostgreSQL")
        return

    figures = Figures("wal")
    path = bodies_file(args.events, args.batch)
    server = Server(server_env())
    wal = server.data_dir / "eventsite.sqlite3-wal"
    db = server.data_dir / "eventsite.sqlite3"
    try:
        lock = threading.Lock()
        sent = [0]
        errors: list[str] = []
        source = open(path, "rb")  # noqa: SIM115 - shared by the client threads, closed below

        def client() -> None:
            with httpx.Client(headers=server.headers, timeout=600) as http:
                while True:
                    with lock:
                        body = source.readline()
                    if not body:
                        return
                    response = http.post(f"{server.url}/api/events", content=body.rstrip(b"\n"))
                    if response.status_code != 204:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                    with lock:
                        sent[0] += body.count(b'"occurred"')

        curve: list[dict] = []
        next_mark = [0.0]

        def sample_wal() -> float:
            size = file_mb(wal)
            done = sent[0] / args.events
            if done >= next_mark[0]:
                curve.append(
                    {
                        "loaded": sent[0],
                        "wal_mb": round(size, 1),
                        "db_mb": round(file_mb(db), 1),
                        "seconds": round(time.monotonic() - started, 1),
                    }
                )
                next_mark[0] += 0.05
            return size

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        started = time.monotonic()
        with Sampler(sample_wal, 0.1) as wal_size, Sampler(server.rss_mb, 0.5) as rss:
            for t in threads:
                t.start()
            last_report = time.monotonic()
            while any(t.is_alive() for t in threads):
                time.sleep(0.5)
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    print(
                        f"  {sent[0]:>9,} sent   WAL {file_mb(wal):8,.0f} MB (peak "
                        f"{wal_size.peak:,.0f})   db {file_mb(db):7,.0f} MB   load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            wal_at_end = file_mb(wal)
            time.sleep(args.after)
            wal_after = file_mb(wal)
        source.close()
        total = httpx.post(
            f"{server.url}/api/events/filter",
            headers=server.headers,
            json={
                "filter": {
                    "occurred": {"since": "2000-01-01T00:00:00Z"},
                    "event": {"exclude_prefix": ["prefect-cloud."]},
                },
                "limit": 0,
            },
            timeout=600,
        ).json()["total"]
        figures.say(
            f"WAL during {args.events:,} events through REST ({args.clients} clients, batches of "
            f"{args.batch}) into serve (engine on), SQLite"
        )
        figures.say(
            f"  WAL peak {wal_size.peak:,.0f} MB (target ≤ 256 MB)   at the end of the load "
            f"{wal_at_end:,.0f} MB   {args.after:.0f} s later {wal_after:,.0f} MB   database "
            f"{file_mb(db):,.0f} MB"
        )
        figures.say(
            f"  ingest {args.events / elapsed:,.0f} events/s over {elapsed:.0f} s   stored "
            f"{total:,} of {args.events:,}   failed requests {len(errors)}   serve peak RSS "
            f"{server.peak_rss_mb():.0f} MB"
        )
        if errors:
            figures.say(f"  e.g. {errors[:2]}")
        figures.update(
            events=args.events,
            clients=args.clients,
            batch=args.batch,
            wal_peak_mb=round(wal_size.peak, 1),
            wal_at_end_mb=round(wal_at_end, 1),
            wal_after_idle_mb=round(wal_after, 1),
            after_idle_seconds=args.after,
            db_mb=round(file_mb(db), 1),
            rest_events_per_s=round(args.events / elapsed),
            load_seconds=round(elapsed, 1),
            stored=total,
            failed_requests=len(errors),
            serve_peak_rss_mb=round(server.peak_rss_mb(), 1),
            serve_rss_sampled_peak_mb=round(rss.peak, 1),
            curve=curve,
        )
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)
    figures.finish()


if __name__ == "__main__":
    sys.exit(main())
