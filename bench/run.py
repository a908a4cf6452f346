"""`make bench`: every benchmark, one after the other, each printing its own figures.

.venv/bin/python bench/run.py            # full sizes (the query and feed benches store 1M events once)
BENCH_QUICK=1 .venv/bin/python bench/run.py   # small sizes, to check that everything runs
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICK = os.environ.get("BENCH_QUICK") == "1"

BENCHES = [
    ("ingest (a): REST", ["-m", "bench.ingest", "--events", "10000" if QUICK else "100000"]),
    (
        "ingest (b, c): Prefect client and SDK",
        ["bench/ingest_clients.py", "5000" if QUICK else "100000"],
    ),
    ("live: /api/events/out latency, 50 subscribers", ["bench/live.py"]),
    ("live: feed sockets latency, 50 sockets", ["bench/feed_live.py"]),
    (
        "query",
        ["-m", "bench.query", "--events", "50000" if QUICK else "1000000"]
        + (["--data-dir", str(ROOT / "var" / "bench-quick")] if QUICK else []),
    ),
    ("feed pages", ["bench/feed.py"]),
    (
        "engine",
        ["bench/engine.py"]
        + (["--backlog", "5000", "--seconds", "3", "--pings", "5"] if QUICK else []),
    ),
    ("webhooks", ["bench/webhooks.py"] + (["--requests", "2000"] if QUICK else [])),
]


def main() -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if QUICK:
        env.setdefault("BENCH_EVENTS", "20000")
        env.setdefault("BENCH_LIVE_EVENTS", "50")
    failed = []
    for title, args in BENCHES:
        script = args[1] if args[0] == "-m" else args[0]
        if args[0] != "-m" and not (ROOT / script).exists():
            continue
        print(f"\n=== {title} ===", flush=True)
        if subprocess.run([sys.executable, *args], cwd=ROOT, env=env).returncode:
            failed.append(title)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
