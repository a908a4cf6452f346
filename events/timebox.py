"""Run a read with a time budget: `with timebox.within(0.025): n = rows.count()`.

Used where an exact answer is a nicety and a slow one is a fault (a page's `total`, the admin's
count): past the budget the statement is cancelled by the database itself and `OutOfTime` is
raised, so the caller can fall back to an estimate.

- SQLite: a progress handler on the connection that interrupts the statement (checked every few
  thousand virtual-machine steps, i.e. every few tens of microseconds).
- PostgreSQL: `statement_timeout`, set for the one statement inside a savepoint and put back to
  what it was (a deployment's own timeout stays in force around it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection, transaction

SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"
SQLITE_STEPS = 2000  # virtual-machine instructions between two looks at the clock


class OutOfTime(Exception):
    """The read did not finish within its budget (and was cancelled)."""


@contextmanager
def within(seconds: float) -> Iterator[None]:
    if seconds <= 0:
        raise OutOfTime
    if connection.vendor == "sqlite":
        with _sqlite(seconds):
            yield
    elif connection.vendor == "postgresql":
        with _postgres(seconds):
            yield
    else:  # pragma: no cover - the two supported backends are above
        yield


@contextmanager
def _sqlite(seconds: float) -> Iterator[None]:
    connection.ensure_connection()
    raw = connection.connection
    deadline = time.monotonic() + seconds
    expired = False

    def check() -> int:
        nonlocal expired
        expired = time.monotonic() > deadline
        return 1 if expired else 0

    raw.set_progress_handler(check, SQLITE_STEPS)
    try:
        yield
    except DatabaseError as exc:
        if expired:
            raise OutOfTime from exc
        raise
    finally:
        raw.set_progress_handler(None, 0)


@contextmanager
def _postgres(seconds: float) -> Iterator[None]:
    milliseconds = max(1, round(seconds * 1000))
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('statement_timeout')")
        (previous,) = cursor.fetchone()
    try:
        # A savepoint: when the statement is cancelled, rolling it back also undoes the setting.
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(SET_TIMEOUT, [f"{milliseconds}ms"])
            yield
            with connection.cursor() as cursor:
                cursor.execute(SET_TIMEOUT, [previous])
    except DatabaseError as exc:
        if getattr(exc, "__cause__", None) is not None and (
            getattr(exc.__cause__, "sqlstate", None) == "57014"  # query_canceled
        ):
            raise OutOfTime from exc
        raise
