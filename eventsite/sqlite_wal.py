"""Keep SQLite's write-ahead log small under sustained ingest and reads (issue 17).

SQLite's own checkpoints (PASSIVE, every 1000 pages, run by the committing writer) copy frames
back into the database but only reset the log when no reader is using it; with a steady stream
of readers and writers that never happens and the `-wal` file grows without end (5.3 GB beside
a 2.2 GB database after 1M events). So, once per deployment (`eventsite.services`), this service
looks at the log's size every `EVENTSITE_SQLITE_WAL_CHECK` and, past
`EVENTSITE_SQLITE_WAL_LIMIT_MB`, runs `PRAGMA wal_checkpoint(TRUNCATE)`: it backfills every frame,
waits for the readers of older snapshots to finish (new readers then read the database file and
do not hold it up), and truncates the file to zero bytes.

A checkpoint that truncates needs the write lock, and SQLite hands that lock to whoever polls for
it first: under a steady stream of ingest transactions the checkpointer could wait for seconds
while the log grew by 40 MB a second. So the write path of this process (`events.ingest.store`)
holds new transactions back at `writers_wait()` while a checkpoint runs; the transactions already
open finish, and the checkpoint gets its turn. Once it holds the write lock it waits for readers
of older snapshots at most `BUSY_MS` (writers wait meanwhile); a checkpoint that could not finish
(a long reader) is simply tried again at the next check. `journal_size_limit` (set on every
connection, `eventsite.settings`) caps what a reset log keeps on disk as well.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

BUSY_MS = 1000  # longest a checkpoint may hold writers up waiting for old readers
MAX_BACKOFF_SECONDS = 16.0
RETRY_SECONDS = 0.005

# Set when no checkpoint runs: the write path passes at once (see the module docstring).
_no_checkpoint = threading.Event()
_no_checkpoint.set()


def checkpointing() -> bool:
    """Whether a checkpoint of this process runs now."""
    return not _no_checkpoint.is_set()


def writers_wait() -> None:
    """Called by the write path before it opens a transaction: waits while a checkpoint runs
    (not inside a transaction already open, which may hold the write lock the checkpoint needs)."""
    if not connection.in_atomic_block:
        _no_checkpoint.wait(BUSY_MS / 1000 + 10)


@dataclass
class Checkpoint:
    busy: bool  # could not finish: a reader or writer held it up past BUSY_MS
    wal_mb_before: float
    wal_mb_after: float


def wal_path() -> str | None:
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if name in ("", ":memory:") or name.startswith("file:"):
        return None
    return f"{name}-wal"


def wal_mb(path: str) -> float:
    try:
        return os.stat(path).st_size / 1e6
    except FileNotFoundError:
        return 0.0


def checkpoint() -> Checkpoint:
    """Run `wal_checkpoint(TRUNCATE)` now, holding writers up for at most `BUSY_MS`."""
    path = wal_path()
    assert path is not None, "a checkpoint needs an SQLite database file"
    before = wal_mb(path)
    _no_checkpoint.clear()
    try:
        busy = _truncate()
    finally:
        _no_checkpoint.set()
    return Checkpoint(busy=busy, wal_mb_before=before, wal_mb_after=wal_mb(path))


def _truncate() -> bool:
    """True when it could not finish within `BUSY_MS`.

    SQLite answers busy at once, without its busy handler, while another connection runs a
    checkpoint (a writer's automatic PASSIVE one, at commit): so it is asked again until then.
    """
    deadline = time.monotonic() + BUSY_MS / 1000
    with connection.cursor() as cursor:
        try:
            while True:
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                cursor.execute(f"PRAGMA busy_timeout = {left_ms}")
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                busy, _, _ = cursor.fetchone()
                if not busy or time.monotonic() >= deadline:
                    break
                time.sleep(RETRY_SECONDS)
        finally:
            timeout_ms = int(connection.settings_dict["OPTIONS"].get("timeout", 5) * 1000)
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
    return bool(busy)


def run_forever(stop: threading.Event) -> None:
    """The WAL-checkpoint service of `manage.py serve` (SQLite only)."""
    path = wal_path()
    if path is None:  # an in-memory database has no log file to keep small
        stop.wait()
        return
    every = settings.EVENTSITE_SQLITE_WAL_CHECK.total_seconds()
    limit = settings.EVENTSITE_SQLITE_WAL_LIMIT_MB
    pause = every  # grows while a long reader keeps making checkpoints give up
    while not stop.wait(pause):
        if wal_mb(path) <= limit:
            pause = every
            continue
        started = time.monotonic()
        try:
            done = checkpoint()
        except Exception:
            logger.exception("WAL checkpoint failed; will retry")
            continue
        finally:
            close_old_connections()
        # Each attempt a reader holds up makes writers wait up to BUSY_MS: back off meanwhile.
        pause = min(pause * 2, MAX_BACKOFF_SECONDS) if done.busy else every
        log = logger.info if done.busy else logger.debug
        log(
            "WAL checkpoint%s: %.0f MB → %.0f MB in %.2f s",
            f" held up by a reader (next try in {pause:.1f} s)" if done.busy else "",
            done.wal_mb_before,
            done.wal_mb_after,
            time.monotonic() - started,
        )
