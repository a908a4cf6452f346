"""Ingest through real clients, end to end: (b) Prefect 3.9.1's `emit_event` over /api/events/in,
(c) eventsite's SDK over POST /api/events.

Each client runs in its own process and emits N events as fast as it can (default 100,000; pass a
smaller N as the first argument or BENCH_EVENTS for a quick run). The figure is events/s from the
first emit until the last event is visible to a query, plus how many of N were stored.

    .venv/bin/python bench/ingest_clients.py [N]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from benchserver import PYTHON, ROOT, BenchServer, size_from_args

PREFECT_CLIENT = """
import sys, time
from prefect.events import emit_event
from prefect.events.worker import EventsWorker
n = int(sys.argv[1])
print(f"START {time.time()}", flush=True)
for i in range(n):
    emit_event(event="bench.prefect", resource={"prefect.resource.id": f"bench.r.{i % 100}"},
               payload={"i": i})
print(f"EMITTED {time.time()}", flush=True)
EventsWorker.drain_all()
print(f"DRAINED {time.time()}", flush=True)
"""

SDK_CLIENT = """
import sys, time
from events.client import emit_event, flush
n = int(sys.argv[1])
print(f"START {time.time()}", flush=True)
for i in range(n):
    emit_event("bench.sdk", {"prefect.resource.id": f"bench.r.{i % 100}"}, payload={"i": i})
print(f"EMITTED {time.time()}", flush=True)
flush()
print(f"DRAINED {time.time()}", flush=True)
"""


def run_client(server: BenchServer, label: str, script: str, env: dict, prefix: str, n: int):
    process = subprocess.Popen(
        [PYTHON, "-c", script, str(n)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    marks: dict[str, float] = {}
    line = process.stdout.readline()
    if not line.startswith("START"):
        raise RuntimeError(f"{label}: {line}{process.stderr.read()[-3000:]}")
    marks["START"] = float(line.split()[1])
    stored, last_change, finished = 0, time.time(), None
    with httpx.Client() as http:
        while True:
            time.sleep(0.25)
            now_stored = server.count(prefix, http)
            now = time.time()
            if now_stored != stored:
                stored, last_change = now_stored, now
            if stored >= n:
                finished = now
                break
            if process.poll() is not None and now - last_change > 15:
                break  # the client is gone and nothing more arrives
            if now - last_change > 120:
                break
    out, err = process.communicate(timeout=300)
    for mark in out.split("\n"):
        if mark.strip():
            name, value = mark.split()
            marks[name] = float(value)
    elapsed = (finished or last_change) - marks["START"]
    print(
        f"{label}: {stored:,} of {n:,} stored; {stored / elapsed:,.0f} events/s end to end "
        f"(first emit -> last event queryable: {elapsed:.1f} s; emit loop "
        f"{marks.get('EMITTED', float('nan')) - marks['START']:.1f} s, client drained after "
        f"{marks.get('DRAINED', float('nan')) - marks['START']:.1f} s)"
    )
    if process.returncode:
        print(f"  client exited {process.returncode}: {err[-1500:]}")
    return stored, elapsed


def main() -> None:
    n = size_from_args(100_000, "BENCH_EVENTS")
    print(f"ingest through clients, {n:,} events each, on {os.cpu_count()} cores")
    with BenchServer() as server:
        print(f"serve: {server.url} ({os.environ.get('EVENTSITE_DATABASE_URL', 'SQLite')})")
        prefect_env = {
            "PREFECT_API_URL": f"{server.url}/api",
            "PREFECT_API_AUTH_STRING": f"eventsite:{server.token}",
            "PREFECT_HOME": os.path.join(server.data_dir, "prefect-home"),
        }
        run_client(
            server, "(b) Prefect 3.9.1 emit_event", PREFECT_CLIENT, prefect_env, "bench.prefect", n
        )
        sdk_env = {
            "EVENTSITE_API_URL": server.url,
            "EVENTSITE_API_TOKEN": server.token,
            "PYTHONPATH": str(ROOT),
        }
        run_client(server, "(c) eventsite SDK emit_event", SDK_CLIENT, sdk_env, "bench.sdk", n)
        print(f"serve peak RSS (VmHWM): {server.peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
