"""`POST /api/automations/preview` over 24 h of a store of N events, through `serve` over HTTP.

    .venv/bin/python -m bench.preview [--events 1000000] [--repeat 3]

The store is a copy of a seeded one (`bench/seed.py`: N events over 7 days, so 24 h hold about
N/7); the window is the last 24 h before the seed's end. Each trigger is previewed once to warm
up and then `--repeat` times; the figure is the client's time for the whole request (the replay
of the engine over the stored events, answer included). Target (issue 12): ≤ 2 s for 24 h over
1M stored events.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta

import httpx

from bench.common import QUICK, Figures, Server, loadavg
from bench.seed import LONG_RETENTION, seeded_env

CASES = {
    "reactive, one name (acme.payment.failed)": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["acme.payment.failed"],
        "for_each": ["prefect.resource.id"],
    },
    "3 failures within 1 h for each region": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["acme.payment.failed", "acme.order.failed"],
        "for_each": ["acme.region"],
        "threshold": 3,
        "within": 3600,
    },
    "heartbeat pattern, for each flow run (prefect.flow-run.*)": {
        "type": "event",
        "posture": "Proactive",
        "after": ["prefect.flow-run.*"],
        "expect": ["prefect.flow-run.*"],
        "for_each": ["prefect.resource.id"],
        "within": 600,
    },
    "compound: any acme.* event and a failed deployment, within 5 min": {
        "type": "compound",
        "require": "all",
        "within": 300,
        "triggers": [
            {
                "type": "event",
                "posture": "Reactive",
                "expect": ["acme.*"],
                "threshold": 1000,
                "within": 60,
            },
            {"type": "event", "posture": "Reactive", "expect": ["prefect.deployment.failed"]},
        ],
    },
    "any event at all (no expect), 5000 within 10 min": {
        "type": "event",
        "posture": "Reactive",
        "threshold": 5000,
        "within": 600,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000 if QUICK else 1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = Figures("preview")
    env, info = seeded_env(args.events)
    end = datetime.fromisoformat(info["end"])
    since, until = end - timedelta(hours=24), end
    figures.say(f"preview over 24 h of {args.events:,} stored events (seed ends {end:%H:%M} UTC)")
    # No query timeout: a preview past it is cut short (`truncated`), and a figure for part of
    # the range would flatter; the bench times the whole replay however long it takes.
    server = Server(env, engine=False, extra_env=LONG_RETENTION | {"EVENTSITE_QUERY_TIMEOUT": "0"})
    try:
        with httpx.Client(headers=server.headers, timeout=300) as http:
            for name, trigger in CASES.items():
                body = {"trigger": trigger, "since": since.isoformat(), "until": until.isoformat()}
                times, answer = [], None
                for i in range(args.repeat + 1):
                    started = time.perf_counter()
                    response = http.post(f"{server.url}/api/automations/preview", json=body)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text[:500]}")
                    answer = response.json()
                    if answer["truncated"]:  # (past REPLAY_MAX_EVENTS)
                        raise RuntimeError(f"{name}: cut short at {answer['until']}")
                    if i:  # the first one warms up
                        times.append(elapsed)
                median = statistics.median(times)
                figures[name] = {
                    "median_s": round(median, 3),
                    "max_s": round(max(times), 3),
                    "events": answer["events"],
                    "firings": answer["count"],
                    "load": loadavg(),
                }
                figures.say(
                    f"  {name}: median {median:.2f} s (max {max(times):.2f} s), "
                    f"{answer['events']:,} events replayed, {answer['count']:,} firings; "
                    f"load {loadavg()}"
                )
    finally:
        server.stop()
        server.remove()
    figures.finish()


if __name__ == "__main__":
    main()
