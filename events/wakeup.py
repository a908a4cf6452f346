"""Wake-ups for readers of the log that wait for new events (the automation engine).

A wake-up carries no data: it only says "the log may have grown", and the reader then reads the
log after its own cursor. A lost wake-up costs latency, never an event, because every waiter
keeps a slow safety poll (`EVENTSITE_ENGINE_POLL`).

- In the process that stored the events: every `Wakeup` is one of `events.broadcast`'s wakers,
  called when the write path's transaction commits (as the live readers are).
- Across processes on PostgreSQL: after the commit of a write that called
  `stored_in_transaction()`, a notifier thread of the process sends `NOTIFY eventsite_stored` (on
  a pooled connection, in autocommit); each `Wakeup` LISTENs on a connection of its own. Not in
  the write's own transaction: a NOTIFY there holds PostgreSQL's notification lock through the
  commit's flush, which serialised concurrent ingest commits. The thread sends one NOTIFY for
  however many commits came in while it sent the last one. SQLite deployments are one process
  (or fall back on the safety poll).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from events import broadcast

logger = logging.getLogger(__name__)

CHANNEL = "eventsite_stored"
LISTEN_RECHECK_SECONDS = 1.0  # how often a listener looks at its stop flag
RECONNECT_SECONDS = 2.0

_notifiers_lock = threading.Lock()


def stored_in_transaction(using: str = DEFAULT_DB_ALIAS) -> None:
    """Tell waiters of other processes, once this transaction commits, that the log has grown
    (PostgreSQL; this process's own are woken by `events.broadcast` on the same commit)."""
    if connections[using].vendor == "postgresql":
        transaction.on_commit(_notifier(using).poke, using=using)


_notifiers: dict[str, _Notifier] = {}


def _notifier(using: str) -> _Notifier:
    with _notifiers_lock:
        if using not in _notifiers:
            _notifiers[using] = _Notifier(using)
        return _notifiers[using]


class _Notifier:
    """Sends NOTIFY for the commits of this process, from a thread of its own."""

    def __init__(self, using: str):
        self.using = using
        self._state = threading.Condition()
        self._pending = False  # a commit since the last NOTIFY began
        self._sending = False
        threading.Thread(target=self._run, name="eventsite-notify", daemon=True).start()
        atexit.register(self._flush)

    def poke(self) -> None:
        with self._state:
            self._pending = True
            self._state.notify_all()

    def _flush(self) -> None:
        """At exit: send what is pending (a web process stopping right after a store)."""
        with self._state:
            self._state.wait_for(lambda: not (self._pending or self._sending), timeout=2)

    def _run(self) -> None:
        connection = connections[self.using]  # this thread's, from the pool; back after each
        while True:
            with self._state:
                self._state.wait_for(lambda: self._pending)
                self._pending, self._sending = False, True
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"NOTIFY {CHANNEL}")
            except Exception:
                logger.warning("wakeup: NOTIFY failed (waiters fall back on their poll)")
            finally:
                connection.close()
                with self._state:
                    self._sending = False
                    self._state.notify_all()


def _connect(using: str, role: str):
    """A connection of its own (not Django's: it would go back to the pool), in autocommit."""
    wrapper = connections[using]
    params = wrapper.get_connection_params()
    params["application_name"] = f"eventsite {role} (pid {os.getpid()})"
    conn = wrapper.Database.connect(**params)
    conn.autocommit = True
    return conn


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
        broadcast.add_waker(self.wake)
        postgresql = connections[using].vendor == "postgresql"
        self._thread = threading.Thread(
            target=self._listen if postgresql else self._watch_stop,
            name=f"{threading.current_thread().name}-wakeup",
            daemon=True,
        )
        self._listening = threading.Event()
        self._thread.start()

    def wake(self, events=()) -> None:
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
        broadcast.remove_waker(self.wake)
        self._thread.join(timeout=LISTEN_RECHECK_SECONDS * 3)

    def _done(self) -> bool:
        return self._stop.is_set() or self._closed.is_set()

    def _watch_stop(self) -> None:
        self._listening.set()
        while not self._done():
            self._stop.wait(LISTEN_RECHECK_SECONDS)
        self._event.set()

    def _listen(self) -> None:
        """LISTEN on a connection of its own."""
        while not self._done():
            conn = None
            try:
                conn = _connect(self.using, "wakeup")
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
