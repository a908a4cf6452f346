"""`make bench`: every benchmark against a real `serve`, one after the other; one results file.

    .venv/bin/python bench/run.py                          # full sizes, SQLite
    BENCH_QUICK=1 .venv/bin/python bench/run.py            # small sizes: does everything run?
    .venv/bin/python bench/run.py --backend postgresql     # PostgreSQL + Redis (DB eventsite_bench)
    BENCH_BACKEND=postgresql make bench                    # the same through make
    .venv/bin/python bench/run.py --only ingest live       # some of them

Each benchmark prints its figures as it goes and hands them to this runner, which writes
`bench/results/<UTC>-<commit>.json` (quick runs: `bench/results/quick/`, not committed) with the
commit, `git status --short`, the load average (1/5/15 min) at the start and end of the run and
of each benchmark, the CPU count, the backend, and every figure; plus a `.txt` beside it with
what was printed. The older in-process benchmarks (feed pages, engine, webhooks: marked
"in-process" below) import application modules and may fail while those move; their output is
kept, their failure recorded.

PostgreSQL: `postgresql://postgres@127.0.0.1:5432/eventsite_bench` (created and dropped by the
run; seeded stores are cached as template databases `eventsite_bench_seed_<N>`) and Redis
`redis://127.0.0.1:6379/5` (flushed per server). The SQLite-only benchmarks are skipped there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import QUICK, loadavg, results_path, run_metadata  # noqa: E402

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/eventsite_bench"
REDIS_URL = "redis://127.0.0.1:6379/5"

# (name, title, command, runs on PostgreSQL too)
BENCHES = [
    (
        "ingest",
        "ingest: REST into serve (engine on) beside the raw insert limit",
        ["-m", "bench.ingest", "--events", "10000" if QUICK else "100000"],
        True,
    ),
    (
        "ingest_clients",
        "ingest: Prefect client and SDK, end to end",
        ["bench/ingest_clients.py", "5000" if QUICK else "100000"],
        True,
    ),
    (
        "idle",
        "idle: CPU share of serve with stored events and no traffic",
        ["-m", "bench.idle"]
        + (
            ["--events", "20000", "--seconds", "10", "--settle", "3", "--automations", "20"]
            if QUICK
            else ["--events", "1000000"]
        ),
        True,
    ),
    ("live", "live: client send → /api/events/out subscribers", ["-m", "bench.live"], True),
    ("feed_live", "live: client send → /ws/feed/ sockets", ["-m", "bench.feed_live"], True),
    ("query", "queries over HTTP at 1M, and serve's peak RSS", ["-m", "bench.query"], True),
    (
        "wal",
        "WAL: peak size while 1M events load through REST",
        ["-m", "bench.wal"] + (["--events", "20000", "--after", "3"] if QUICK else []),
        False,
    ),
    ("feed", "feed pages (in-process: Django's test client, no server)", ["bench/feed.py"], False),
    (
        "engine",
        "engine capacity and latency (in-process writer + run_engine)",
        ["bench/engine.py"]
        + (["--backlog", "5000", "--seconds", "3", "--pings", "5"] if QUICK else []),
        False,
    ),
    (
        "webhooks",
        "webhooks receiver",
        ["bench/webhooks.py"] + (["--requests", "2000"] if QUICK else []),
        False,
    ),
]


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks; write one results file.")
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql"],
        default=os.environ.get("BENCH_BACKEND", "sqlite"),
        help="default: $BENCH_BACKEND or sqlite (so `BENCH_BACKEND=postgresql make bench` works)",
    )
    parser.add_argument("--only", nargs="+", help="run only these (by name)")
    parser.add_argument("--skip", nargs="+", default=[], help="skip these (by name)")
    args = parser.parse_args()
    names = [b[0] for b in BENCHES]
    for name in (args.only or []) + args.skip:
        if name not in names:
            parser.error(f"unknown benchmark {name!r}; one of {', '.join(names)}")

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSITE_")}
    env["PYTHONPATH"] = str(ROOT)
    if QUICK:
        env.setdefault("BENCH_EVENTS", "20000")
        env.setdefault("BENCH_LIVE_EVENTS", "50")
    if args.backend == "postgresql":
        env["EVENTSITE_DATABASE_URL"] = os.environ.get("BENCH_POSTGRES_URL", POSTGRES_URL)
        env["EVENTSITE_REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", REDIS_URL)
        os.environ.update(
            EVENTSITE_DATABASE_URL=env["EVENTSITE_DATABASE_URL"],
            EVENTSITE_REDIS_URL=env["EVENTSITE_REDIS_URL"],
        )
    else:
        os.environ.pop("EVENTSITE_DATABASE_URL", None)
    meta = run_metadata()
    figures_file = Path(tempfile.mkstemp(prefix="bench-figures-", suffix=".jsonl")[1])
    env["BENCH_FIGURES"] = str(figures_file)
    # bench/feed.py fills a data dir of its own; keep it out of /tmp's way after the run.
    feed_dir = tempfile.mkdtemp(prefix="eventsite-bench-feed-")
    env.setdefault("BENCH_DATA_DIR", feed_dir)
    header = (
        f"make bench: commit {meta['git']['short']}{' (dirty)' if meta['git']['dirty'] else ''}, "
        f"{meta['backend']}, {meta['cpus']} CPUs, {'quick' if QUICK else 'full'} sizes, load "
        f"average {' '.join(str(x) for x in loadavg())} at start"
    )
    print(header, flush=True)
    load_start = loadavg()
    runs = []
    for name, title, command, on_postgres in BENCHES:
        if (args.only and name not in args.only) or name in args.skip:
            continue
        if args.backend == "postgresql" and not on_postgres:
            runs.append({"bench": name, "title": title, "skipped": "SQLite only"})
            print(f"\n=== {title} === skipped on PostgreSQL (SQLite only)", flush=True)
            continue
        print(f"\n=== {title} ===", flush=True)
        before = loadavg()
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = []
        for line in process.stdout:
            print(line, end="", flush=True)
            output.append(line.rstrip("\n"))
        process.wait()
        runs.append(
            {
                "bench": name,
                "title": title,
                "command": " ".join(command),
                "returncode": process.returncode,
                "wall_seconds": round(time.monotonic() - started, 1),
                "load_start": before,
                "load_end": loadavg(),
                "output": output[-200:],
            }
        )

    # Merge the figures each benchmark recorded (by name) into its run.
    recorded = {}
    for line in figures_file.read_text().splitlines():
        record = json.loads(line)
        recorded[record["bench"]] = record
    figures_file.unlink()
    shutil.rmtree(feed_dir, ignore_errors=True)
    for run in runs:
        if run["bench"] in recorded:
            record = recorded[run["bench"]]
            run["figures"] = record["figures"]
            run["summary"] = record["summary"]

    if args.backend == "postgresql":
        from bench.common import drop_postgres

        drop_postgres(env["EVENTSITE_DATABASE_URL"])

    failed = [r["bench"] for r in runs if r.get("returncode")]
    load_end = loadavg()
    path = results_path(meta)
    document = {**meta, "load_start": load_start, "load_end": load_end, "benches": runs}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    lines = [header]
    for run in runs:
        lines.append("")
        lines.append(f"=== {run['title']} ===")
        if run.get("skipped"):
            lines.append(f"skipped: {run['skipped']}")
            continue
        lines += run.get("summary") or run["output"][-40:]
        lines.append(
            f"({run['wall_seconds']:.0f} s, load {' '.join(map(str, run['load_start']))} → "
            f"{' '.join(map(str, run['load_end']))}"
            + (f", FAILED with exit code {run['returncode']}" if run["returncode"] else "")
            + ")"
        )
    lines.append("")
    lines.append(
        f"load average at end {' '.join(map(str, load_end))}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    path.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    print(f"\n{lines[-1]}\nresults: {path.relative_to(ROOT)} (+ .txt)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
