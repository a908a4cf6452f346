"""Engine benchmark: 1,000 enabled automations (mixed patterns, 10% for_each) on SQLite.

1. capacity: how many stored events/s the engine evaluates, draining a backlog;
2. keeping up: ingest paced at --rate events/s for --seconds while the engine runs, and the
   engine's lag behind the log when ingest stops;
3. latency: with the engine idle, the delay from an ingest commit to the `call-webhook`
   request arriving at a loopback sink (median and p95 of --pings).

The engine runs as its own process (`manage.py run_engine`), as in the scale-out deployment;
events are stored by this process through the one write path (`events.ingest.ingest`).

    .venv/bin/python bench/engine.py [--automations 1000] [--backlog 50000] [--rate 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
KINDS = ["order", "payment", "shipment", "invoice", "flow-run", "deployment"]
VERBS = ["created", "updated", "completed", "failed", "cancelled", "retried"]


def make_event(rng: random.Random, occurred: datetime) -> dict:
    kind = rng.choice(KINDS)
    prefix = "prefect" if kind in ("flow-run", "deployment") else "acme"
    n = rng.randrange(100_000)
    return {
        "occurred": occurred.isoformat(),
        "event": f"{prefix}.{kind}.{rng.choice(VERBS)}",
        "resource": {
            "prefect.resource.id": f"{prefix}.{kind}.{n}",
            "prefect.resource.name": f"{kind.title()} {n}",
            "acme.region": rng.choice(REGIONS),
        },
        "related": [
            {
                "prefect.resource.id": f"acme.customer.{rng.randrange(1000)}",
                "prefect.resource.role": "customer",
            }
        ],
        "payload": {"amount": round(rng.random() * 1000, 2), "trace": uuid.uuid4().hex},
        "id": str(uuid.uuid4()),
    }


def automation_triggers(count: int, rng: random.Random) -> list[dict]:
    """Mixed patterns: exact names, globs, label and related matches; 10% for_each."""
    triggers = []
    for i in range(count):
        kind = rng.choice(KINDS)
        prefix = "prefect" if kind in ("flow-run", "deployment") else "acme"
        name = f"{prefix}.{kind}.{rng.choice(VERBS)}"
        shape = i % 10
        if shape == 0:  # 10%: for_each, a bucket per resource
            trigger = {
                "expect": [name],
                "for_each": ["prefect.resource.id"],
                "threshold": 3,
                "within": 60,
            }
        elif shape in (1, 2, 3, 4):  # exact name, a resource id glob
            trigger = {
                "expect": [name],
                "match": {"prefect.resource.id": f"{prefix}.{kind}.{rng.randrange(1000, 10000)}*"},
            }
        elif shape in (5, 6):  # name glob, a region and a related customer
            trigger = {
                "expect": [f"{prefix}.{kind}.*"],
                "match": {"acme.region": rng.choice(REGIONS)},
                "match_related": {
                    "prefect.resource.role": "customer",
                    "prefect.resource.id": f"acme.customer.{rng.randrange(1000)}",
                },
            }
        elif shape in (7, 8):  # exact name, a negated region, a threshold in a window
            trigger = {
                "expect": [name],
                "match": {
                    "acme.region": f"!{rng.choice(REGIONS)}",
                    "prefect.resource.id": f"{prefix}.{kind}.{rng.randrange(100, 1000)}*",
                },
                "threshold": 2,
                "within": 30,
            }
        else:  # proactive
            trigger = {"expect": [name], "posture": "Proactive", "within": 60}
        triggers.append({"type": "event", "posture": "Reactive", **trigger})
    return triggers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (robust to other load on a shared machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sink:
    def __init__(self):
        self.arrivals: dict[str, float] = {}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
                sink.arrivals[body.strip()] = time.monotonic()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--automations", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pings", type=int, default=40)
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="eventsite-bench-engine-")
    os.environ["EVENTSITE_DATA_DIR"] = data_dir
    os.environ["EVENTSITE_LOG_LEVEL"] = "WARNING"
    # The latency sink is on loopback, which actions refuse unless allowed.
    os.environ["EVENTSITE_ACTIONS_ALLOW_PRIVATE"] = "1"
    os.environ.pop("EVENTSITE_DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from automations.models import Automation, EngineCursor, Firing
    from automations.triggers import parse_trigger
    from events.ingest import ingest
    from events.models import Event

    call_command("migrate", verbosity=0)
    rng = random.Random(11)
    Automation.objects.bulk_create(
        Automation(name=f"bench {i}", trigger=parse_trigger(t).to_json(), actions=[])
        for i, t in enumerate(automation_triggers(args.automations, rng))
    )
    sink = Sink()
    Automation.objects.create(
        name="ping",
        trigger=parse_trigger(
            {"type": "event", "posture": "Reactive", "expect": ["bench.ping"]}
        ).to_json(),
        actions=[{"type": "call-webhook", "url": sink.url, "payload": "{{ event.resource.id }}"}],
    )
    print(f"{Automation.objects.count()} automations, SQLite in {data_dir}")

    def store(n: int) -> None:
        now = datetime.now(UTC)
        batch = [
            make_event(rng, now - timedelta(milliseconds=rng.randrange(2000))) for _ in range(n)
        ]
        result = ingest(batch, source="bench")
        assert result.ok

    def cursor_at() -> datetime | None:
        row = EngineCursor.objects.filter(name="default").first()
        return row.received if row else None

    def last_received() -> datetime:
        return Event.objects.order_by("-received").values_list("received", flat=True).first()

    env = {**os.environ}
    engine = subprocess.Popen(
        [sys.executable, "manage.py", "run_engine"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while cursor_at() is None and EngineCursor.objects.count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("engine did not start")
            time.sleep(0.1)

        # 1. capacity: a backlog stored while the engine is stopped, then drained
        engine.terminate()
        engine.wait(10)
        for _ in range(args.backlog // 500):
            store(500)
        target = last_received()
        engine = subprocess.Popen(
            [sys.executable, "manage.py", "run_engine"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        started = time.monotonic()
        cpu_before = cpu_seconds(engine.pid)
        before = cursor_at()
        first_move = None
        cpu_steady = cpu_before
        while (cursor_at() or datetime.min.replace(tzinfo=UTC)) < target:
            if first_move is None and cursor_at() != before:
                first_move = time.monotonic()
                cpu_steady = cpu_seconds(engine.pid)
            time.sleep(0.02)
        finished = time.monotonic()
        cpu = cpu_seconds(engine.pid) - cpu_before
        # The cursor is written with each batch that changed state, so its first move comes one
        # batch after the engine started evaluating: count that batch out of the rate.
        batch = int(os.environ.get("EVENTSITE_ENGINE_BATCH", 2000))
        steady = (args.backlog - batch) / (finished - (first_move or started))
        print(
            f"capacity: drained a backlog of {args.backlog:,} events in {finished - started:.1f} s "
            f"including engine start-up ({args.backlog / (finished - started):,.0f} events/s); "
            f"steady {steady:,.0f} events/s; engine CPU {cpu:.1f} s = "
            f"{args.backlog / cpu:,.0f} events per CPU-second, steady "
            f"{(args.backlog - batch) / (cpu_before + cpu - cpu_steady):,.0f} after start-up; "
            f"firings {Firing.objects.count():,}"
        )

        # 2. keeping up with paced ingest
        per_tick = max(1, args.rate // 10)
        lags = []
        started = time.monotonic()
        for tick in range(args.seconds * 10):
            due = started + tick * 0.1
            time.sleep(max(0.0, due - time.monotonic()))
            store(per_tick)
            if tick % 10 == 9:
                c, last = cursor_at(), last_received()
                lags.append((last - c).total_seconds() if c else float("inf"))
        ingest_elapsed = time.monotonic() - started
        target = last_received()
        while (cursor_at() or datetime.min.replace(tzinfo=UTC)) < target:
            time.sleep(0.02)
        caught_up = time.monotonic() - started
        total = per_tick * args.seconds * 10
        print(
            f"keeping up: ingested {total:,} events at {total / ingest_elapsed:,.0f}/s; "
            f"engine lag sampled each second {', '.join(f'{x:.2f}' for x in lags)} s; "
            f"caught up {caught_up - ingest_elapsed:.2f} s after ingest stopped "
            f"→ engine {total / caught_up:,.0f} events/s"
        )

        # 3. latency with the engine idle
        time.sleep(1.0)
        delays = []
        for i in range(args.pings):
            rid = f"bench.ping.{i}"
            ping = {
                "occurred": datetime.now(UTC).isoformat(),
                "event": "bench.ping",
                "resource": {"prefect.resource.id": rid},
                "id": str(uuid.uuid4()),
            }
            ingest([ping], source="bench")
            committed = time.monotonic()
            deadline = committed + 10
            while rid not in sink.arrivals and time.monotonic() < deadline:
                time.sleep(0.001)
            if rid in sink.arrivals:
                delays.append(sink.arrivals[rid] - committed)
            time.sleep(0.2)
        delays.sort()
        print(
            f"latency: ingest commit → webhook received, engine idle, {len(delays)}/{args.pings} "
            f"pings: median {statistics.median(delays) * 1000:.1f} ms, "
            f"p95 {delays[int(0.95 * (len(delays) - 1))] * 1000:.1f} ms"
        )
    finally:
        engine.terminate()
        engine.wait(10)


if __name__ == "__main__":
    main()
