"""Wake-ups for readers of the log that wait for new events (the automation engine).

A wake-up carries no data: it only says "the log may have grown", and the reader then reads the
log after its own cursor. A lost wake-up costs latency, never an event, because every waiter
keeps a slow safety poll (`EVENTSITE_ENGINE_POLL`).

- In the process that stored the events: `stored_in_transaction()` (called by the write path
  inside its transaction) sets every `Wakeup` of the process when the transaction commits.
- Across processes on PostgreSQL: the same call issues `NOTIFY eventsite_stored` in the
  transaction (delivered on commit, collapsed to one per transaction); each `Wakeup` of another
  process LISTENs on a connection of its own. SQLite deployments are one process (or fall back
  on the safety poll).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref

from django.db import DEFAULT_DB_ALIAS, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "eventsite_stored"
LISTEN_RECHECK_SECONDS = 1.0  # how often a listener looks at its stop flag
RECONNECT_SECONDS = 2.0

_waiters: weakref.WeakSet[Wakeup] = weakref.WeakSet()
_waiters_lock = threading.Lock()


def stored_in_transaction(using: str = DEFAULT_DB_ALIAS) -> None:
    """Tell waiters, once this transaction commits, that the log has grown."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    transaction.on_commit(wake_local, using=using)


def wake_local() -> None:
    with _waiters_lock:
        waiters = list(_waiters)
    for waiter in waiters:
        waiter.wake()


class Wakeup:
    """What a reader of the log waits on between reads: woken by new events or by `stop`.

    `wait(timeout)` returns True when woken (by a store, here or, on PostgreSQL, in any process
    of the deployment) and False after `timeout` seconds of quiet. Call `close()` when done.
    """

    def __init__(self, stop: threading.Event, *, using: str = DEFAULT_DB_ALIAS):
        self._event = threading.Event()
        self._stop = stop
        self._closed = threading.Event()
        self.using = using
        with _waiters_lock:
            _waiters.add(self)
        postgresql = connections[using].vendor == "postgresql"
        self._thread = threading.Thread(
            target=self._listen if postgresql else self._watch_stop,
            name=f"{threading.current_thread().name}-wakeup",
            daemon=True,
        )
        self._listening = threading.Event()
        self._thread.start()

    def wake(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woken = self._event.wait(max(timeout, 0.0))
        self._event.clear()
        return woken

    def listening(self, timeout: float) -> bool:
        """Wait until the PostgreSQL listener is in place (tests; True at once elsewhere)."""
        return self._listening.wait(timeout)

    def close(self) -> None:
        self._closed.set()
        self._event.set()
        with _waiters_lock:
            _waiters.discard(self)
        self._thread.join(timeout=LISTEN_RECHECK_SECONDS * 3)

    def _done(self) -> bool:
        return self._stop.is_set() or self._closed.is_set()

    def _watch_stop(self) -> None:
        self._listening.set()
        while not self._done():
            self._stop.wait(LISTEN_RECHECK_SECONDS)
        self._event.set()

    def _listen(self) -> None:
        """LISTEN on a connection of its own (not Django's: it would go back to the pool)."""
        wrapper = connections[self.using]
        while not self._done():
            conn = None
            try:
                params = wrapper.get_connection_params()
                params["application_name"] = f"eventsite wakeup (pid {os.getpid()})"
                conn = wrapper.Database.connect(**params)
                conn.autocommit = True
                conn.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                # Whatever was stored while (re)connecting is found by the reader's next read.
                self._event.set()
                while not self._done():
                    for _ in conn.notifies(timeout=LISTEN_RECHECK_SECONDS, stop_after=1):
                        self._event.set()
            except Exception:
                logger.warning("wakeup: lost the LISTEN connection; reconnecting", exc_info=True)
                self._listening.clear()
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
        self._event.set()
