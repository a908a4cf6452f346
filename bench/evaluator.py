"""Evaluator benchmark (in-process, pure): trigger evaluation without the database.

The engine benchmark's 1,001 automations (`bench/engine.py`) evaluated by `Evaluator` over N
generated events, 5 ms apart, with the proactive tick every 5 s of event time; prints events per
CPU-second of this process (`time.process_time`, which other load disturbs less than wall time).
`--silent K` adds K proactive triggers on names that never occur, so that K outages open at once
and stay open: the path where every event is checked against open outages (issue 12, resolve).

    .venv/bin/python bench/evaluator.py [--events 60000] [--silent 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")

import django  # noqa: E402

django.setup()

from automations.triggers import AutomationSpec, Evaluator, parse_trigger  # noqa: E402
from bench.engine import automation_triggers, make_event  # noqa: E402
from events.schema import Event  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICK = timedelta(seconds=5)


def specs(silent: int, rng: random.Random) -> list[AutomationSpec]:
    triggers = automation_triggers(1000, rng)
    triggers.append({"type": "event", "posture": "Reactive", "expect": ["acme.never"]})
    triggers += [
        {"type": "event", "posture": "Proactive", "expect": [f"acme.silent.{i}"], "within": 10}
        for i in range(silent)
    ]
    return [AutomationSpec(id=uuid.uuid4(), trigger=parse_trigger(t)) for t in triggers]


def events(count: int, rng: random.Random) -> list[Event]:
    made = []
    for i in range(count):
        data = make_event(rng, T0 + timedelta(milliseconds=5 * i))
        at = datetime.fromisoformat(data["occurred"])
        made.append(
            Event(
                occurred=at,
                event=data["event"],
                resource=data["resource"],
                related=data["related"],
                payload=data["payload"],
                id=uuid.UUID(data["id"]),
                follows=None,
                received=at,
            )
        )
    return made


def one_round(count: int, silent: int) -> None:
    rng = random.Random(7)
    evaluator = Evaluator(specs(silent, rng))
    stream = events(count, rng)
    fired = 0
    next_tick = T0
    start = time.process_time()
    for event in stream:
        fired += len(evaluator.on_event(event, clock=event.received))
        if event.received >= next_tick:
            fired += len(evaluator.on_tick(event.received))
            next_tick = event.received + TICK
    cpu = time.process_time() - start
    print(
        f"evaluator: {count:,} events, {silent} silent proactive triggers: "
        f"{count / cpu:,.0f} events per CPU-second ({cpu:.2f} s); firings {fired}, "
        f"open outages {len(getattr(evaluator.state, 'outages', {}))}; load {os.getloadavg()[0]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--silent", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if os.environ.get("BENCH_QUICK"):
        args.events = 2_000
    for _ in range(args.rounds):
        one_round(args.events, args.silent)


if __name__ == "__main__":
    main()
