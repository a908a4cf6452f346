"""Deployment-wide locks: one holder among all the processes that share the database.

Some work must happen in one process of a deployment at a time, however many web processes and
engines run: first-run setup (migrations, the first admin) and once-per-deployment services such
as the retention pruner (`eventsite.services`). The lock lives where every process already
meets, the database:

- PostgreSQL: a session advisory lock on a connection of its own. Not Django's connection: that
  one goes back to the pool (with any session lock on it) when a thread is done with it. The
  server drops the lock when the connection ends, so a crashed holder frees it at once.
- SQLite: an exclusive `flock` on a file next to the database file. Processes that share a
  SQLite database share its file system; the kernel drops the lock when the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger(__name__)


def lock_key(name: str) -> int:
    """The PostgreSQL advisory lock key of `name`: a stable signed 64-bit integer."""
    digest = hashlib.blake2b(f"eventsite:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class DeploymentLock:
    """A named lock held by at most one process of the deployment.

    `acquire()` tries once (or, with `wait=True`, until it gets the lock); `held()` says whether
    it is still held (a PostgreSQL holder loses it with its connection); `release()` gives it
    up. As a context manager it waits for the lock.
    """

    def __init__(self, name: str, *, using: str = DEFAULT_DB_ALIAS):
        self.name = name
        self.using = using
        self.key = lock_key(name)
        self._conn = None  # PostgreSQL: the connection holding the lock
        self._fd: int | None = None  # SQLite: the locked file

    @property
    def _postgresql(self) -> bool:
        return connections[self.using].vendor == "postgresql"

    def acquire(self, *, wait: bool = False) -> bool:
        if self._conn is not None or self._fd is not None:
            return True
        if self._postgresql:
            return self._acquire_advisory(wait)
        return self._acquire_file(wait)

    def held(self) -> bool:
        if self._fd is not None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1")
        except Exception:
            logger.warning("deployment lock %s: its connection is gone", self.name)
            self._drop_connection()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases its flock
            self._fd = None
        if self._conn is not None:
            # When the connection is gone, so is the lock.
            with contextlib.suppress(Exception):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", [self.key])
            self._drop_connection()

    def __enter__(self) -> DeploymentLock:
        self.acquire(wait=True)
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # --- PostgreSQL ----------------------------------------------------------------------------

    def _acquire_advisory(self, wait: bool) -> bool:
        wrapper = connections[self.using]
        # What Django itself connects with (without its pool), through its own driver module;
        # named so an operator sees in pg_stat_activity which process holds what.
        params = wrapper.get_connection_params()
        params["application_name"] = f"eventsite {self.name} (pid {os.getpid()})"
        conn = wrapper.Database.connect(**params)
        conn.autocommit = True
        try:
            if wait:
                conn.execute("SELECT pg_advisory_lock(%s)", [self.key])
                got = True
            else:
                got = conn.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()[0]
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def _drop_connection(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = None

    # --- SQLite --------------------------------------------------------------------------------

    def _lock_path(self) -> Path:
        database = str(connections[self.using].settings_dict["NAME"])
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name)
        if database in ("", ":memory:") or database.startswith("file:"):
            return Path(settings.DATA_DIR) / f"{safe}.lock"
        return Path(f"{database}.{safe}.lock")

    def _acquire_file(self, wait: bool) -> bool:
        fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True
