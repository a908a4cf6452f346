"""Idle cost: CPU share of `serve` holding N stored events with no traffic (issue 17, item 1).

    .venv/bin/python -m bench.idle [--events 1000000] [--seconds 60] [--settle 15] [--automations 100]

Starts `serve` (engine on) over a copy of a seeded store (`bench/seed.py`, cached under
`var/bench-data/`; the first run at 1M seeds for a few minutes), waits `--settle` seconds, then
reports the process's CPU seconds / wall seconds over `--seconds` — once with no automations,
then, on the same server, after creating `--automations` enabled automations through
`POST /api/automations/` (3 in 4 reactive, 1 in 4 proactive; all `do-nothing`). Also: CPU per
thread (the main thread is Daphne's; the others are the background services, in start order:
retention, the SQLite WAL checkpoint, then the engine and its wake-up listener), RSS, and how many events the server stored while "idle" (audit
and automation events: work it did on its own).

Targets: ≤ 2 % of a core with no automations, ≤ 5 % with 100.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import httpx

from bench.common import Figures, Server, cpu_seconds, create_automations
from bench.seed import LONG_RETENTION, seeded_env


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            out[int(task.name)] = cpu_seconds_of(task / "stat")
    return out


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(server: Server) -> int:
    response = httpx.post(
        f"{server.url}/api/events/filter",
        headers=server.headers,
        json={"filter": {"occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 0},
        timeout=120,
    )
    response.raise_for_status()
    return response.json()["total"]


def measure(server: Server, *, settle: float, seconds: float) -> dict:
    time.sleep(settle)
    before_events = stored(server)
    threads_before = thread_cpu(server.pid)
    cpu_before = cpu_seconds(server.pid)
    started = time.monotonic()
    time.sleep(seconds)
    cpu = cpu_seconds(server.pid) - cpu_before
    wall = time.monotonic() - started
    threads_after = thread_cpu(server.pid)
    per_thread = {
        ("main (Daphne)" if tid == server.pid else f"thread {tid}"): round(
            (threads_after[tid] - threads_before.get(tid, 0.0)) / wall * 100, 2
        )
        for tid in sorted(threads_after)
    }
    return {
        "cpu_share_percent": round(cpu / wall * 100, 2),
        "cpu_seconds": round(cpu, 2),
        "wall_seconds": round(wall, 1),
        "threads_percent": {k: v for k, v in per_thread.items() if v > 0.05},
        "rss_mb": round(server.rss_mb(), 1),
        "events_stored_meanwhile": stored(server) - before_events,
    }


def line(label: str, r: dict) -> str:
    threads = ", ".join(f"{k} {v:.1f}%" for k, v in r["threads_percent"].items()) or "none"
    return (
        f"  {label:24} CPU {r['cpu_share_percent']:6.2f} % of a core ({r['cpu_seconds']:.1f} s "
        f"in {r['wall_seconds']:.0f} s)   RSS {r['rss_mb']:.0f} MB   events stored meanwhile "
        f"{r['events_stored_meanwhile']}\n    by thread: {threads}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--settle", type=float, default=15)
    parser.add_argument("--automations", type=int, default=100)
    args = parser.parse_args()

    figures = Figures("idle")
    prepared = time.monotonic()
    env, seed = seeded_env(args.events)
    figures["prepare_seconds"] = round(time.monotonic() - prepared, 1)
    server = Server(env, extra_env=LONG_RETENTION)
    try:
        total = stored(server)
        figures.say(
            f"idle serve (engine on) over {total:,} stored events, no traffic; settle "
            f"{args.settle:.0f} s, then CPU over {args.seconds:.0f} s "
            f"(retention {LONG_RETENTION['EVENTSITE_EVENT_RETENTION']} over the cached seed)"
        )
        none = measure(server, settle=args.settle, seconds=args.seconds)
        figures.say(line("no automations:", none) + "   (target ≤ 2 %)")
        made = create_automations(server, args.automations)
        some = measure(server, settle=args.settle, seconds=args.seconds)
        label = f"{args.automations} automations:"
        figures.say(
            line(label, some)
            + f"   (target ≤ 5 %; {made['Reactive']} reactive, {made['Proactive']} proactive)"
        )
        figures.say(f"  serve peak RSS {server.peak_rss_mb():.0f} MB")
        figures.update(
            stored_events=total,
            seeded_events=seed["events"],
            seed_created=seed.get("created"),
            settle_seconds=args.settle,
            no_automations=none,
            with_automations={**some, "count": args.automations, **made},
            cpu_share_percent_no_automations=none["cpu_share_percent"],
            cpu_share_percent_with_automations=some["cpu_share_percent"],
            serve_peak_rss_mb=round(server.peak_rss_mb(), 1),
        )
    finally:
        server.remove()
    figures.finish()


if __name__ == "__main__":
    main()
