"""Keep SQLite's write-ahead log small under sustained ingest and reads (issue 17).

SQLite's own checkpoints (PASSIVE, every 1000 pages, run by the committing writer) copy frames
back into the database but only reset the log when no reader is using it; with a steady stream
of readers and writers that never happens and the `-wal` file grows without end (5.3 GB beside
a 2.2 GB database after 1M events). So, once per deployment (`eventsite.services`), this service
looks at the log's size every `EVENTSITE_SQLITE_WAL_CHECK` and, past
`EVENTSITE_SQLITE_WAL_LIMIT_MB`, runs `PRAGMA wal_checkpoint(TRUNCATE)`: it backfills every frame,
waits for the readers of older snapshots to finish (new readers then read the database file and
do not hold it up), and truncates the file to zero bytes.

While it waits it blocks new writers, so it waits at most `BUSY_MS`; a checkpoint that could not
finish (a long reader) is simply tried again at the next check. `journal_size_limit` (set on every
connection, `eventsite.settings`) caps what a reset log keeps on disk as well.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

BUSY_MS = 2000  # longest a checkpoint may hold writers up waiting for old readers


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
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        try:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy, _, _ = cursor.fetchone()
        finally:
            timeout_ms = int(connection.settings_dict["OPTIONS"].get("timeout", 5) * 1000)
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
    return Checkpoint(busy=bool(busy), wal_mb_before=before, wal_mb_after=wal_mb(path))


def run_forever(stop: threading.Event) -> None:
    """The WAL-checkpoint service of `manage.py serve` (SQLite only)."""
    path = wal_path()
    if path is None:  # an in-memory database has no log file to keep small
        stop.wait()
        return
    every = settings.EVENTSITE_SQLITE_WAL_CHECK.total_seconds()
    limit = settings.EVENTSITE_SQLITE_WAL_LIMIT_MB
    while not stop.wait(every):
        if wal_mb(path) <= limit:
            continue
        try:
            done = checkpoint()
        except Exception:
            logger.exception("WAL checkpoint failed; will retry")
            continue
        finally:
            close_old_connections()
        log = logger.info if done.busy else logger.debug
        log(
            "WAL checkpoint%s: %.0f MB → %.0f MB",
            " held up by a reader (retrying)" if done.busy else "",
            done.wal_mb_before,
            done.wal_mb_after,
        )
