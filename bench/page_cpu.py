"""CPU time per API request, in process: what each `bench.query` case costs the server itself.

    .venv/bin/python -m bench.page_cpu [--events 1000000] [--repeat 25] [--only NAME-PART ...]
        [--data-dir DIR] [--code CHECKOUT]

`bench.query` times requests over HTTP, which on this shared 2-core machine moves with the load
(the same case 7 ms quiet, 25-45 ms at load 5). This runs the same API cases (`bench.query`'s
bodies) through Django's whole request path in one process (middleware, token auth, DRF, the
view, the JSON body) with Django's test client, and reports the request thread's CPU time
(`time.thread_time`, which other processes disturb far less than wall time): the median over
`--repeat` requests after one warm-up. Every request gets a new database connection, as under
`serve` (no persistent connections: SQLite's page cache starts empty each time). The token is
a non-admin's (an editor's), as `bench.query`'s is: its filters exclude the audit trail
(`roles.readable`).

The store is a copy of the seeded one (`bench.seed`, as `bench.query` uses), or `--data-dir`:
a SQLite data dir of your own (e.g. a copy migrated to another commit's schema), and `--code` the
checkout whose code serves (default: this one), to compare two commits alternating. With EVENTSITE_DATABASE_URL set, a clone of the PostgreSQL template.
`--keep-connection` keeps one connection for every request instead (not what `serve` does): the
difference is what a request pays for its new connection and empty page cache. PostgreSQL's
own work is in its server processes, so there the figure is the Django side alone.
Writes `bench/results/<UTC>-<commit>-page_cpu.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from bench.common import QUICK, ROOT, Figures
from bench.query import api_cases, request_body
from bench.seed import LONG_RETENTION, seeded_env

INSIDE = """
import json, os, statistics, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client
from events.accounts.models import ApiToken

call_command("migrate", verbosity=0)
keep = os.environ.get("BENCH_KEEP_CONNECTION") == "1"
if keep:  # one connection for every request (what a warm page cache would give), not `serve`'s way
    connection.settings_dict["CONN_MAX_AGE"] = None
user, _ = get_user_model().objects.get_or_create(username="bench-cpu")
_, secret = ApiToken.issue(user, name=f"cpu-{time.time()}")
client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
cases, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
for name, (path, body) in cases.items():
    body = json.dumps(body)
    cpu = []
    for i in range(repeat + 1):
        if not keep:
            connection.close()
        started = time.thread_time()
        response = client.post(path, body, content_type="application/json")
        if i:
            cpu.append((time.thread_time() - started) * 1000)
        assert response.status_code in (200, 503), (name, response.status_code)
    print(json.dumps({"case": name, "cpu_ms": statistics.median(cpu), "status": response.status_code}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50_000 if QUICK else 1_000_000)
    parser.add_argument("--repeat", type=int, default=5 if QUICK else 25)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--data-dir", type=Path, help="a SQLite data dir to use as it is")
    parser.add_argument(
        "--code", type=Path, default=ROOT, help="the checkout whose code serves (default: this)"
    )
    parser.add_argument(
        "--keep-connection",
        action="store_true",
        help="one database connection for every request (not serve's way): what it would save",
    )
    args = parser.parse_args()
    figures = Figures("page_cpu")
    if args.data_dir:
        env = {**os.environ, "EVENTSITE_DATA_DIR": str(args.data_dir)}
        env.setdefault("EVENTSITE_SECRET_KEY", "bench-page-cpu")
        seed = json.loads((args.data_dir / "seed.json").read_text())
    else:
        env, seed = seeded_env(args.events)
    end = datetime.fromisoformat(seed["end"])
    cases = {
        name: (path, request_body(path, body))
        for name, (path, body) in api_cases(end).items()
        if not args.only or any(part in name for part in args.only)
    }
    each = "one database connection kept" if args.keep_connection else "a new connection each"
    figures.say(
        f"CPU per request in process (Django's test client, an editor's token, {each}), "
        f"median of {args.repeat} after one warm-up"
    )
    env = {**env, **LONG_RETENTION, "DJANGO_SETTINGS_MODULE": "eventsite.settings"}
    env["PYTHONPATH"] = str(args.code)
    env["BENCH_KEEP_CONNECTION"] = "1" if args.keep_connection else "0"
    run = subprocess.Popen(
        [sys.executable, "-c", INSIDE, json.dumps(cases), str(args.repeat)],
        env=env,
        cwd=args.code,
        stdout=subprocess.PIPE,
        text=True,
    )
    rows = []
    for line in run.stdout:
        row = json.loads(line)
        rows.append(row)
        figures.say(f"  {row['case']:40} CPU {row['cpu_ms']:7.2f} ms   HTTP {row['status']}")
    if run.wait():
        raise SystemExit(f"the in-process run failed ({run.returncode})")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.code, capture_output=True, text=True
    ).stdout.strip()
    figures.update(
        cases=rows,
        repeat=args.repeat,
        events=args.events,
        code_commit=commit,
        keep_connection=args.keep_connection,
    )
    figures.say(f"  code: {args.code} at {commit}")
    figures.finish()


if __name__ == "__main__":
    main()
