"""Where one PostgreSQL retention pass goes: the pass over one day, statement by statement.

    EVENTSITE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/eventsite_bench_<name> \\
    EVENTSITE_EVENT_RETENTION=3650d .venv/bin/python -m bench.retention_steps [--day 0] [--commit]

`events.retention.prune(before=<end of that day>)` over a seeded store (`bench.seed`), every
statement timed by a `connection.execute_wrapper`; printed: the events removed, the whole pass,
the time the log was locked (from the DETACH of `events_event` to the end of that day's
transaction, whose ACCESS EXCLUSIVE lock makes ingest and reads wait) and the slowest statements.
The pass is rolled back unless `--commit`, so runs can alternate between two checkouts over the
same day (for one without this file: `cd <checkout> && PYTHONPATH=. python <this file>`).
`--day` picks a day partition, oldest first: every day before it goes too. With `--commit` the
pass still runs inside one outer transaction (committed at the end, after the timing): the real
service's lock ends with each day's own transaction, so take the locked figure from rolled-back
runs, which measure that span the same way for any checkout.
"""

from __future__ import annotations

import argparse
import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventsite.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402

from events import partitions  # noqa: E402
from events.retention import prune  # noqa: E402


class Timer:
    """An execute wrapper that times each statement and the log's locked span."""

    def __init__(self) -> None:
        self.statements: list[tuple[float, str]] = []
        self.locked = 0.0
        self._since: float | None = None

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        if self._since is None and sql.startswith('ALTER TABLE "events_event" DETACH'):
            self._since = started
        try:
            return execute(sql, params, many, context)
        finally:
            done = time.perf_counter()
            self.statements.append(((done - started) * 1000, sql))
            # Under the outer transaction the day's own one is a savepoint: its release is its end.
            if self._since is not None and sql.startswith("RELEASE SAVEPOINT"):
                self.locked += done - self._since
                self._since = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--day", type=int, default=0)
    parser.add_argument("--commit", action="store_true")
    parser.add_argument("--top", type=int, default=6)
    args = parser.parse_args()
    if not partitions.enabled():
        raise SystemExit("PostgreSQL's partitioned log only: set EVENTSITE_DATABASE_URL")
    name, _, end = partitions.day_partitions()[args.day]
    timer = Timer()
    with transaction.atomic():
        started = time.perf_counter()
        with connection.execute_wrapper(timer):
            gone = prune(before=end)
        seconds = time.perf_counter() - started
        transaction.set_rollback(not args.commit)
    print(
        f"{name}: {gone:,} events, pass {seconds * 1000:,.0f} ms, log locked "
        f"{timer.locked * 1000:,.0f} ms ({'committed' if args.commit else 'rolled back'})"
    )
    for ms, sql in sorted(timer.statements, reverse=True)[: args.top]:
        print(f"  {ms:9,.1f} ms  {sql[:110]}")


if __name__ == "__main__":
    main()
