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
  however many commits came in while it sent the last one.
- Across processes elsewhere (SQLite with a separate `run_engine`), when the channel layer is
  shared (Redis): each `Wakeup` follows the `events` group that `events.broadcast` wakes on
  every commit, from a channel of its own. With the in-memory layer, a SQLite deployment is one
  process (or falls back on the safety poll).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import threading

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from events import broadcast

logger = logging.getLogger(__name__)

CHANNEL = "eventsite_stored"
LISTEN_RECHECK_SECONDS = 1.0  # how often a listener looks at its stop flag
RECONNECT_SECONDS = 2.0
RENEW_SECONDS = 5.0  # a layer listener renews its group membership (Redis may have restarted)

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


def _shared_layer():
    """The channel layer, when other processes share it (not the in-memory one)."""
    layer = get_channel_layer()
    return None if layer is None or isinstance(layer, InMemoryChannelLayer) else layer


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
        if connections[using].vendor == "postgresql":
            target = self._listen
        elif _shared_layer() is not None:
            target = self._follow_layer
        else:
            target = self._watch_stop
        self._thread = threading.Thread(
            target=target,
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

    def _follow_layer(self) -> None:
        asyncio.run(self._follow_group(_shared_layer()))

    async def _follow_group(self, layer) -> None:
        """Be woken by every process's commits through the channel layer's `events` group."""
        loop = asyncio.get_running_loop()
        channel = None
        receiving: asyncio.Future | None = None  # kept across stop checks, never cancelled
        while not self._done():
            try:
                if channel is None:
                    channel = await layer.new_channel("wakeup.")
                await layer.group_add(broadcast.GROUP, channel)
                self._listening.set()
                self._event.set()  # what was stored while (re)joining: the next read finds it
                renew_at = loop.time() + RENEW_SECONDS
                while not self._done():
                    if receiving is None:
                        receiving = asyncio.ensure_future(layer.receive(channel))
                    done, _ = await asyncio.wait({receiving}, timeout=LISTEN_RECHECK_SECONDS)
                    if loop.time() >= renew_at:
                        await layer.group_add(broadcast.GROUP, channel)
                        renew_at = loop.time() + RENEW_SECONDS
                    if not done:
                        continue
                    message, receiving = receiving.result(), None
                    if message.get("origin") != broadcast.ORIGIN:  # ours came directly
                        self._event.set()
            except Exception:
                receiving = None
                logger.warning("wakeup: the channel layer failed; rejoining", exc_info=True)
                self._listening.clear()
                self._event.set()  # the reader's next read needs no layer
                await asyncio.sleep(RECONNECT_SECONDS)
        if receiving is not None:
            receiving.cancel()
        if channel is not None:
            with contextlib.suppress(Exception):
                await layer.group_discard(broadcast.GROUP, channel)
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
