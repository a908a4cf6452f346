"""A deadline on every query a request runs: past it the query is stopped and the answer is 503.

A filter can be made expensive (the lists of `EventFilter` are bounded, but patterns and time
ranges are not), so every read a request makes runs under `EVENTSITE_QUERY_TIMEOUT`:

- SQLite: a progress handler that interrupts the statement once the deadline passed;
- PostgreSQL: `statement_timeout`, set on the connection before the request's first read and
  put back to none before a write (ingest, audit rows), so a large batch is never cut short.

`QueryDeadlineMiddleware` installs it (a `connection.execute_wrapper`) around each request and
turns the stopped query into `503` with the reason (Prefect's error keys under `/api/`) instead
of a 500 or a worker held for minutes; `reads_bounded` does the same for the backfill of an
`/api/events/out` subscription (closed 1013 with the reason).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from django.conf import settings
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponse

TIMEOUT_MESSAGES = ("interrupted", "statement timeout", "canceling statement")
_READS = ("SELECT", "WITH")
_DATA_CHANGE = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
# SQLite virtual-machine steps between two looks at the clock (a fraction of a millisecond).
# Each look takes the GIL, which SQLite runs without and `serve`'s other threads contend for: at
# 2,000 steps the slowest reads of bench/query.py at 1M were slower over HTTP (two label keys
# 156 → 85 ms, a three-criteria combination 96 → 49 ms at 50,000, on a loaded machine).
PROGRESS_STEPS = 50_000


def _is_transaction_control(sql) -> bool:
    return isinstance(sql, str) and sql.lstrip()[:9].upper().startswith(
        ("SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "BEGIN")
    )


def _is_read(sql: str) -> bool:
    """A SELECT, or a WITH query that changes nothing (the write path's one statement on
    PostgreSQL is a WITH whose parts INSERT: a write, never cut short)."""
    head = sql.lstrip()[:6].upper()
    if head.startswith("WITH"):
        return _DATA_CHANGE.search(sql) is None
    return head.startswith(_READS)


@contextlib.contextmanager
def sqlite_deadline(db, deadline: float) -> Iterator[None]:
    """Interrupt SQLite statements past `deadline` (a `time.monotonic()` value) within the block.

    SQLite has one progress handler per connection: the deadlines in force (this request's, and
    a shorter budget of `events.timebox` around one read) are kept on the connection, and the
    handler checks the nearest, so neither removes the other.
    """
    stack = db.__dict__.setdefault("_eventsite_deadlines", [])
    stack.append(deadline)
    _install(db, stack)
    try:
        yield
    finally:
        stack.remove(deadline)
        _install(db, stack)


def _install(db, stack: list[float]) -> None:
    if not stack:
        db.connection.set_progress_handler(None, 0)
        return
    nearest = min(stack)

    def passed() -> bool:
        if time.monotonic() <= nearest:
            return False
        db.__dict__["_eventsite_stopped_by"] = nearest
        return True

    db.connection.set_progress_handler(passed, PROGRESS_STEPS)


def stopped_by(db) -> float | None:
    """The deadline that last interrupted a statement on this connection (SQLite): when the
    handler first looks at the clock after several passed (a loaded machine), the nearest."""
    return db.__dict__.get("_eventsite_stopped_by")


class QueryDeadline:
    """`connection.execute_wrapper` that bounds each read statement to `seconds`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.pg_timeout: int | None = None  # what this connection's statement_timeout is (ms)

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: dict):
        db = context["connection"]
        read = isinstance(sql, str) and _is_read(sql)
        if db.vendor == "sqlite":
            if not read:
                return execute(sql, params, many, context)
            with sqlite_deadline(db, time.monotonic() + self.seconds):
                return execute(sql, params, many, context)
        if db.vendor == "postgresql" and not _is_transaction_control(sql):
            # (Savepoints and rollbacks pass untouched: after a cancelled statement, a SET before
            # the ROLLBACK TO SAVEPOINT would fail in the aborted transaction.)
            wanted = max(1, int(self.seconds * 1000)) if read else 0
            if self.pg_timeout != wanted:
                # On the driver's connection: not through the wrappers again, and not on the
                # statement's own cursor, which may be a server-side one (DECLARE … FOR SET fails).
                db.connection.execute(f"SET statement_timeout = {wanted}")
                self.pg_timeout = wanted
        return execute(sql, params, many, context)

    def reset(self) -> None:
        if self.pg_timeout:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SET statement_timeout = 0")
            except Exception:  # a broken connection is closed by Django; nothing to reset
                connection.close()
        self.pg_timeout = None


@contextlib.contextmanager
def reads_bounded(seconds: float | None = None) -> Iterator[None]:
    """Run the block's reads under the deadline (`EVENTSITE_QUERY_TIMEOUT` by default); for work
    outside a request (socket backfills)."""
    if seconds is None:
        seconds = settings.EVENTSITE_QUERY_TIMEOUT.total_seconds()
    if seconds <= 0:
        yield
        return
    deadline = QueryDeadline(seconds)
    try:
        with connection.execute_wrapper(deadline):
            yield
    finally:
        deadline.reset()


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and any(
        text in str(exc).lower() for text in TIMEOUT_MESSAGES
    )


def timeout_response(request: HttpRequest) -> HttpResponse:
    seconds = settings.EVENTSITE_QUERY_TIMEOUT.total_seconds()
    detail = (
        f"The query took longer than {seconds:g} seconds and was stopped; "
        "narrow the filter (a shorter time range, fewer or more precise patterns) and retry."
    )
    if request.path.startswith("/api/"):
        body = orjson.dumps({"detail": detail, "exception_message": detail})
        return HttpResponse(body, status=503, content_type="application/json")
    return HttpResponse(detail, status=503, content_type="text/plain; charset=utf-8")


class QueryDeadlineMiddleware:
    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        seconds = settings.EVENTSITE_QUERY_TIMEOUT.total_seconds()
        if seconds <= 0:
            return self.get_response(request)
        with reads_bounded(seconds):
            return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if is_timeout(exception):
            return timeout_response(request)
        return None
