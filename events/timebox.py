"""Run a read with a time budget: `with timebox.within(0.025): n = rows.count()`.

Used where an exact answer is a nicety and a slow one is a fault (a page's `total`, the admin's
count): past the budget the statement is cancelled by the database itself and `OutOfTime` is
raised, so the caller can fall back to an estimate.

- SQLite: the connection's progress handler interrupts the statement (checked every few
  thousand virtual-machine steps); shared with the request's deadline
  (`eventsite.query_deadline.sqlite_deadline`), the nearer one wins.
- PostgreSQL: `statement_timeout`, set for the one statement inside a savepoint and put back to
  what it was (a deployment's own timeout stays in force around it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction

from eventsite.query_deadline import sqlite_deadline, stopped_by

SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"
# The timeout in force, in milliseconds: current_setting gives it with its unit ("20ms", "1min").
_MILLISECONDS = "extract(epoch from current_setting('statement_timeout')::interval) * 1000"


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
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself (the request's deadline uses it)
    db.ensure_connection()
    deadline = time.monotonic() + seconds
    try:
        with sqlite_deadline(db, deadline):
            yield
    except DatabaseError as exc:
        # Only when this budget stopped it: when the handler first looks at the clock after the
        # request's deadline and the budget both passed (a loaded machine), the request's, which
        # is nearer, stopped it, and a fallback read would answer past the request's deadline.
        if stopped_by(db) == deadline:
            raise OutOfTime from exc
        raise  # another deadline (the request's): its own error


@contextmanager
def _postgres(seconds: float) -> Iterator[None]:
    deadline = time.monotonic() + seconds
    wanted = max(1, round(seconds * 1000))
    with connection.cursor() as cursor:
        # current_setting, not pg_settings: that view builds every setting's row (0.45 ms).
        cursor.execute(f"SELECT ({_MILLISECONDS})::bigint")
        previous = int(cursor.fetchone()[0])  # milliseconds; 0 is none
    try:
        # A savepoint: when the statement is cancelled, rolling it back also undoes the setting.
        with transaction.atomic():
            with connection.cursor() as cursor:
                # A shorter timeout already in force (the request's deadline) stays in force.
                shortest = min(wanted, previous) if previous else wanted
                cursor.execute(SET_TIMEOUT, [f"{shortest}ms"])
            yield
            with connection.cursor() as cursor:
                cursor.execute(SET_TIMEOUT, [f"{previous}ms"])
    except DatabaseError as exc:
        cancelled = getattr(exc.__cause__, "sqlstate", None) == "57014"  # query_canceled
        # With a timeout as short already in force (the request's), the cancel is the request's.
        own = not previous or wanted < previous
        if cancelled and own and time.monotonic() >= deadline - 0.001:
            raise OutOfTime from exc
        raise
