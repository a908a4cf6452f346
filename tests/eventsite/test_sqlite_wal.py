"""SQLite's WAL stays small (issue 17): a size cap on every connection, and a checkpoint service
that truncates the log under steady reads, gives up on a reader that holds an old snapshot
without holding writers for long, and succeeds once that reader is done."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings

from eventsite import services, sqlite_wal
from tests.automations.conftest import event, store

pytestmark = [
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write-ahead log"),
    pytest.mark.django_db(transaction=True),
]


def grow_the_wal(n: int = 300) -> None:
    store(
        *[event("acme.wal.grow", f"acme.thing.{i}", payload={"pad": "x" * 500}) for i in range(n)]
    )


def reader() -> sqlite3.Connection:
    """Another connection to the same database file, as another thread or process has."""
    return sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=30)


def test_every_connection_caps_what_a_reset_wal_keeps_on_disk():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_size_limit")
        assert cursor.fetchone()[0] == 64 * 1024 * 1024
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


def test_a_checkpoint_truncates_the_wal_while_short_reads_go_on():
    grow_the_wal()
    path = sqlite_wal.wal_path()
    assert sqlite_wal.wal_mb(path) > 0.1
    stop = threading.Event()
    reads = [0]

    def keep_reading():
        db = reader()
        while not stop.is_set():
            db.execute("SELECT count(*) FROM events_event").fetchone()
            reads[0] += 1
        db.close()

    thread = threading.Thread(target=keep_reading)
    thread.start()
    try:
        while reads[0] < 5:
            time.sleep(0.01)
        done = sqlite_wal.checkpoint()
    finally:
        stop.set()
        thread.join()
    assert not done.busy
    assert done.wal_mb_before > 0.1 and done.wal_mb_after == 0


def test_a_reader_holding_an_old_snapshot_holds_the_checkpoint_up_not_the_writers_for_long():
    grow_the_wal()
    old = reader()
    old.execute("BEGIN")
    old.execute("SELECT count(*) FROM events_event").fetchone()  # holds this snapshot
    grow_the_wal(50)  # frames the old reader cannot see
    try:
        started = time.monotonic()
        done = sqlite_wal.checkpoint()
        assert time.monotonic() - started < sqlite_wal.BUSY_MS / 1000 + 3
        assert done.busy and done.wal_mb_after > 0
        grow_the_wal(10)  # writers go on after it gave up
    finally:
        old.execute("COMMIT")
        old.close()
    done = sqlite_wal.checkpoint()
    assert not done.busy and done.wal_mb_after == 0


@override_settings(
    EVENTSITE_SQLITE_WAL_CHECK=timedelta(seconds=0.05), EVENTSITE_SQLITE_WAL_LIMIT_MB=0
)
def test_the_service_truncates_the_wal_once_it_passes_the_limit():
    (service,) = [s for s in services.SERVICES if s.name == "sqlite-wal"]
    assert service.once_per_deployment and service.sqlite_only
    path = sqlite_wal.wal_path()
    stop = threading.Event()
    # The service itself, not its lock: a live server of another test may hold that one.
    thread = threading.Thread(target=sqlite_wal.run_forever, args=(stop,))
    thread.start()
    try:
        for _ in range(3):
            grow_the_wal(100)
            deadline = time.monotonic() + 30
            while sqlite_wal.wal_mb(path) > 0:
                assert time.monotonic() < deadline, "the WAL was not truncated"
                time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)


def test_the_write_path_waits_for_a_running_checkpoint_then_goes_on():
    """Ingest transactions of this process hold back while a checkpoint runs, so a steady stream
    of them cannot keep the checkpoint from the write lock; they go on once it is done."""
    grow_the_wal()
    old = reader()
    old.execute("BEGIN")
    old.execute("SELECT count(*) FROM events_event").fetchone()
    grow_the_wal(20)  # the old reader now holds the checkpoint up until it gives up (BUSY_MS)
    done, stored = [], threading.Event()
    checkpointing = threading.Thread(target=lambda: done.append(sqlite_wal.checkpoint()))
    writer = threading.Thread(target=lambda: (grow_the_wal(5), stored.set()))
    try:
        checkpointing.start()
        while not sqlite_wal.checkpointing():
            time.sleep(0.001)
        writer.start()
        assert not stored.wait(sqlite_wal.BUSY_MS / 1000 / 2)  # held while the checkpoint runs
        checkpointing.join()
        assert done[0].busy  # it gave up on the old reader...
        assert stored.wait(30)  # ...and the writer went on
    finally:
        writer.join(30)
        old.execute("COMMIT")
        old.close()


@override_settings(
    EVENTSITE_SQLITE_WAL_CHECK=timedelta(seconds=0.05), EVENTSITE_SQLITE_WAL_LIMIT_MB=0
)
def test_the_service_backs_off_while_a_long_reader_holds_checkpoints_up(caplog):
    """Every attempt a reader holds up costs writers up to BUSY_MS, so they get rarer."""
    grow_the_wal()
    old = reader()
    old.execute("BEGIN")
    old.execute("SELECT count(*) FROM events_event").fetchone()
    grow_the_wal(20)
    stop = threading.Event()
    # The service itself, not its lock: a live server of another test may hold that one.
    thread = threading.Thread(target=sqlite_wal.run_forever, args=(stop,))
    caplog.set_level(logging.INFO, logger="eventsite.sqlite_wal")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(held := [r for r in caplog.records if "held up" in r.getMessage()]) < 2:
            assert time.monotonic() < deadline, "no two held-up attempts"
            time.sleep(0.05)
        pauses = [float(re.search(r"next try in ([\d.]+) s", r.getMessage())[1]) for r in held]
        assert pauses[:2] == [0.1, 0.2]  # the 0.05 s check interval, doubled at each attempt
    finally:
        stop.set()
        old.execute("COMMIT")
        old.close()
        thread.join(10)
    done = sqlite_wal.checkpoint()
    assert not done.busy and done.wal_mb_after == 0
