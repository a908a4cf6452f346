"""Ingest through real clients, end to end, into `serve` with its engine running: (b) Prefect
3.9.1's `emit_event` over /api/events/in, (c) eventsite's SDK over POST /api/events.

Each client runs in its own process and emits N events as fast as it can (default 100,000; pass a
smaller N as the first argument or BENCH_EVENTS for a quick run). The figure is events/s from the
first emit until the last event is visible to a query, plus how many of N were stored.

    .venv/bin/python bench/ingest_clients.py [N]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Figures, Server, server_env  # noqa: E402

PYTHON = sys.executable

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


def size_from_args(default: int, env: str) -> int:
    """The benchmark size: the first command-line argument, else the env variable, else default."""
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        return int(sys.argv[1])
    return int(os.environ.get(env, default))


def count(server: Server, prefix: str, http: httpx.Client) -> int:
    """How many stored events have a name starting with `prefix` (what a query sees)."""
    response = http.post(
        f"{server.url}/api/events/filter",
        json={"filter": {"event": {"prefix": [prefix]}}, "limit": 0},
        headers=server.headers,
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["total"]


def run_client(
    figures: Figures, server: Server, label: str, script: str, env: dict, prefix: str, n: int
) -> dict:
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
            now_stored = count(server, prefix, http)
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
    emitted = marks.get("EMITTED", float("nan")) - marks["START"]
    drained = marks.get("DRAINED", float("nan")) - marks["START"]
    figures.say(
        f"{label}: {stored:,} of {n:,} stored; {stored / elapsed:,.0f} events/s end to end "
        f"(first emit -> last event queryable: {elapsed:.1f} s; emit loop "
        f"{emitted:.1f} s, client drained after {drained:.1f} s)"
    )
    if process.returncode:
        figures.say(f"  client exited {process.returncode}: {err[-1500:]}")
    return {
        "stored": stored,
        "sent": n,
        "events_per_s": round(stored / elapsed),
        "seconds": round(elapsed, 2),
        "emit_loop_seconds": round(emitted, 2),
        "drained_after_seconds": round(drained, 2),
        "client_exit": process.returncode,
    }


def main() -> None:
    n = size_from_args(100_000, "BENCH_EVENTS")
    figures = Figures("ingest_clients")
    figures.say(f"ingest through clients into serve (engine on), {n:,} events each")
    env = server_env()
    server = Server(env)
    data_dir = env["EVENTSITE_DATA_DIR"]
    try:
        prefect_env = {
            "PREFECT_API_URL": f"{server.url}/api",
            "PREFECT_API_AUTH_STRING": f"eventsite:{server.token}",
            "PREFECT_HOME": os.path.join(data_dir, "prefect-home"),
        }
        figures["prefect_emit_event"] = run_client(
            figures,
            server,
            "(b) Prefect 3.9.1 emit_event",
            PREFECT_CLIENT,
            prefect_env,
            "bench.prefect",
            n,
        )
        sdk_env = {
            "EVENTSITE_API_URL": server.url,
            "EVENTSITE_API_TOKEN": server.token,
            "PYTHONPATH": str(ROOT),
        }
        figures["sdk_emit_event"] = run_client(
            figures, server, "(c) eventsite SDK emit_event", SDK_CLIENT, sdk_env, "bench.sdk", n
        )
        figures.say(f"serve peak RSS (VmHWM): {server.peak_rss_mb():.0f} MB")
        figures["serve_peak_rss_mb"] = round(server.peak_rss_mb(), 1)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    figures.finish()


if __name__ == "__main__":
    sys.exit(main())
