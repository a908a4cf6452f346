"""The machine itself, so that figures from different machines can be read side by side.

    .venv/bin/python -m bench.machine [--repeat 2000]

Stop 22's machine served the same code about twice as slowly as stop 21's (`GET /api/health`
1.8 → 4.0–5.1 ms) while Prefect's server slowed by ~20 %: our requests cross threads (Daphne's
event loop → the request's sync thread → back), Prefect's async endpoints do not. This prints
what those costs are here, with no server and no database:

- a Python loop (3M additions): single-core interpreter speed;
- a cross-thread round trip (a value to another thread and back through two queues) and a
  thread's start + join: what each request's hand-offs cost;
- an in-memory SQLite insert and point read: the database's own CPU, without the disk.

Quote these beside a benchmark's figures when comparing runs from different machines.
"""

from __future__ import annotations

import argparse
import queue
import sqlite3
import statistics
import threading
import time

from bench.common import Figures


def loop_ms() -> float:
    started = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i
    return (time.perf_counter() - started) * 1000


def thread_round_trip_us(repeat: int) -> float:
    there, back = queue.Queue(), queue.Queue()

    def echo() -> None:
        while (item := there.get()) is not None:
            back.put(item)

    worker = threading.Thread(target=echo)
    worker.start()
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        there.put(i)
        back.get()
        times.append(time.perf_counter() - started)
    there.put(None)
    worker.join()
    return statistics.median(times) * 1e6


def thread_start_join_us(repeat: int) -> float:
    times = []
    for _ in range(repeat // 10):
        started = time.perf_counter()
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def sqlite_us(repeat: int) -> tuple[float, float]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    started = time.perf_counter()
    for i in range(repeat):
        db.execute("INSERT INTO t (body) VALUES (?)", (f"event {i}",))
    insert = (time.perf_counter() - started) / repeat
    started = time.perf_counter()
    for i in range(repeat):
        db.execute("SELECT body FROM t WHERE id = ?", (i + 1,)).fetchone()
    read = (time.perf_counter() - started) / repeat
    return insert * 1e6, read * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    figures = Figures("machine")
    loop = min(loop_ms() for _ in range(3))
    trip = thread_round_trip_us(args.repeat)
    start = thread_start_join_us(args.repeat)
    insert, read = sqlite_us(args.repeat * 10)
    figures.say(f"  Python loop, 3M additions (best of 3)   {loop:8.0f} ms")
    figures.say(f"  cross-thread round trip (median)        {trip:8.0f} µs")
    figures.say(f"  thread start + join (median)            {start:8.0f} µs")
    figures.say(f"  SQLite in memory: insert / point read   {insert:6.1f} / {read:.1f} µs")
    figures.update(
        loop_ms=round(loop, 1),
        thread_round_trip_us=round(trip, 1),
        thread_start_join_us=round(start, 1),
        sqlite_insert_us=round(insert, 2),
        sqlite_read_us=round(read, 2),
    )
    figures.finish()


if __name__ == "__main__":
    main()
