"""Live delivery from the stored log: every open socket gets every matching event, or is told.

The stored log is the truth and channel-layer messages are only wake-ups (shared DESIGN.md). One
`Tail` per process (per event loop) reads the log after its cursor, in (received, id) order,
through `events.queries`, and offers what it read to every live `Subscription` of the process:
the API's `/api/events/out` sockets and the feed and audit pages' `/ws/feed/` sockets. Each
subscription keeps the events that match its filter in a bounded queue, in log order; a socket
that reads too slowly to keep up overflows it and is closed with 1013 and a reason, and its
client's reconnect backfills from the store. So a subscriber's position in the log is the tail's
cursor minus what waits in its queue, and nothing is ever dropped silently.

Why one reader per process rather than one per socket: 500 sockets reading the log on every
wake-up would be 500 queries per commit; the tail makes it one, and a subscriber costs one
in-memory `matches()` per event plus its send (a matching event's frame or row is built once per
process, `LiveEvent.cached`).

What wakes the tail:
- a commit in its own process, directly (`broadcast.add_waker`), handing over the committed
  events: the tail delivers them at once, before its read of the store (which then skips them),
  so a process's own writes reach its sockets without waiting for a read of the log. They may
  arrive ahead of events other processes stored moments before (not yet read); so the tail does
  this only while it is caught up (its last read, at most `PUSH_FRESH_SECONDS` ago, found the end
  of the log), and a reconnecting page's backfill looks `LONG_OVERLAP` further back;
- a wake-up on the channel layer (`events.broadcast` sends one per commit to the `events` group,
  which holds one channel per process: the tail's), so other processes' writes arrive at once;
- every `TICK_SECONDS` regardless, so a lost, expired or dropped wake-up (a full channel, Redis
  gone) costs at most that much latency, never an event.
The tail rejoins the group whenever the layer's connection failed (and renews its place every
`RENEW_SECONDS`, which also restores it after Redis restarted with an empty memory).

Late commits. The write path stamps `received` before its transaction commits, so two writers can
commit out of `received` order, and a reader past `received = t` could miss an event stamped
t − ε that commits later. After every read the tail compares, over the last `SHORT_OVERLAP` of the
log behind its cursor (every tick: `LONG_OVERLAP`), the number of stored events with the number
it has delivered; only when they differ does it list the ids and deliver the missing ones. An
event that commits more than `LONG_OVERLAP` after its stamp is not seen live (its subscribers
find it in the store).

Reads run on a thread of the tail's own (with its own connection: kept on SQLite, taken from
the pool for each read on PostgreSQL), so they never queue behind the writes of the process's
shared database thread.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone

from events import broadcast, queries, schema
from events.broadcast import GROUP
from events.filters import EventFilter, OccurredFilter

logger = logging.getLogger(__name__)

TICK_SECONDS = 1.0
RENEW_SECONDS = 5.0
READ_LIMIT = 1000
SHORT_OVERLAP = timedelta(seconds=2)
LONG_OVERLAP = timedelta(seconds=15)
REJOIN_MAX_SECONDS = 2.0
# A commit's events are handed to its own process's tail only while the tail's last read (they
# come at least every tick) found the end of the log this recently.
PUSH_FRESH_SECONDS = 2 * TICK_SECONDS
TOO_SLOW = 1013
# The ASGI scope extension through which eventsite's server lets a consumer send text frames
# synchronously (`eventsite.server.EventsiteServer.send_texts_now`); absent under other servers.
SEND_NOW_EXTENSION = "eventsite.send_texts_now"


class LiveEvent:
    """A stored event on its way to the subscribers, with what they derive from it built once."""

    __slots__ = ("event", "_memo")

    def __init__(self, event: schema.Event):
        self.event = event
        self._memo: dict[str, Any] = {}

    def cached(self, key: str, make: Callable[[schema.Event], Any]) -> Any:
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = make(self.event)
            return value


class Subscription:
    """One socket's place: its filter and its bounded queue of matching events, in log order."""

    def __init__(
        self,
        tail: Tail,
        event_filter: EventFilter,
        *,
        max_pending: int,
        on_too_slow: Callable[[str], None],
    ):
        self.tail = tail
        self.event_filter = event_filter
        self.since, self.until = event_filter.occurred.since, event_filter.occurred.until
        self.shape_key, self.shape = _shape(event_filter)
        self.max_pending = max_pending
        self.on_too_slow = on_too_slow
        self.pending: deque[LiveEvent] = deque()
        self.ready = asyncio.Event()
        self.closed = False
        # While its socket waits idle in `take`, a subscription may be given a way to send an
        # event at once, from the tail's delivery loop (`eventsite.server.send_texts_now`).
        self.sink: Callable[[list[LiveEvent]], bool] | None = None

    def offer(self, items: list[LiveEvent]) -> None:
        """Queue `items`, which match this filter's shape; its occurred window is checked here."""
        if self.closed:
            return
        since, until = self.since, self.until
        if len(items) == 1:  # the usual case: one commit, one event
            if not since <= items[0].event.occurred <= until:
                return
            fitting = items
        else:
            fitting = [item for item in items if since <= item.event.occurred <= until]
            if not fitting:
                return
        if self.sink is not None and not self.pending and self._sent_now(fitting):
            return
        if len(self.pending) + len(fitting) > self.max_pending:
            self.close()
            self.pending.clear()
            self.on_too_slow(
                f"Subscriber too slow: over {self.max_pending} events waiting; reconnect to resume"
            )
            return
        self.pending.extend(fitting)
        self.ready.set()

    def _sent_now(self, items: list[LiveEvent]) -> bool:
        try:
            return self.sink(items)
        except Exception:
            logger.exception("live: sending at once failed; queueing instead")
            self.sink = None
            return False

    async def take(self, sink: Callable[[list[LiveEvent]], bool] | None = None) -> list[LiveEvent]:
        """Everything waiting (at least one event), oldest first.

        While nothing waits, `sink(events)` (when given) is offered the new events first, in
        the tail's delivery loop, and returns whether it sent them all (or had them skipped) or
        none: a socket with room in its write buffer then gets its events without a wake-up of
        its task. What the sink refuses is queued, and from then on everything queues until the
        caller takes it, so the order holds.
        """
        while not self.pending:
            self.ready.clear()
            self.sink = sink
            try:
                await self.ready.wait()
            finally:
                self.sink = None
        items = list(self.pending)
        self.pending.clear()
        self.ready.clear()
        return items

    def close(self) -> None:
        self.closed = True
        self.sink = None
        self.tail.discard(self)


class Tail:
    """The process's reader of the log for live sockets (one per event loop)."""

    def __init__(self) -> None:
        self.subscriptions: set[Subscription] = set()
        self.cursor: queries.Cursor | None = None
        # (received, id) of what was delivered within LONG_OVERLAP behind the cursor, sorted.
        self.seen: list[tuple[datetime, uuid.UUID]] = []
        self.seen_ids: set[uuid.UUID] = set()
        self.wake = asyncio.Event()
        self.runner: asyncio.Task | None = None
        self.listener: asyncio.Task | None = None
        self.starting = asyncio.Lock()
        self.executor: ThreadPoolExecutor | None = None
        self.waker: Callable[[Sequence[schema.Event]], None] | None = None
        self.reads = 0
        self.read_done_at = float("-inf")
        self.backlogged = True

    async def subscribe(
        self, event_filter: EventFilter, *, max_pending: int, on_too_slow: Callable[[str], None]
    ) -> Subscription:
        """Follow the log from now on; what was stored before is the caller's backfill."""
        subscription = Subscription(
            self, event_filter, max_pending=max_pending, on_too_slow=on_too_slow
        )
        async with self.starting:
            if self.runner is None:
                await self._start()
            self.subscriptions.add(subscription)
        return subscription

    def discard(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)
        if not self.subscriptions and self.runner is not None:
            self._stop()  # nobody follows the log: reading it would cost for nothing

    async def _start(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-tail")
        cursor, behind = await self._in_thread(_start_position, LONG_OVERLAP)
        self.cursor = cursor
        self.seen = sorted((received, event_id) for event_id, received in behind.items())
        self.seen_ids = set(behind)
        self.wake.clear()
        loop = asyncio.get_running_loop()

        def waker(events: Sequence[schema.Event]) -> None:
            if loop.is_closed():  # the loop ended without stopping the tail: forget it
                broadcast.remove_waker(waker)
                return
            loop.call_soon_threadsafe(self._push, events)

        self.waker = waker
        broadcast.add_waker(waker)
        self.runner = asyncio.create_task(self._run())
        self.listener = asyncio.create_task(self._listen())

    def _stop(self) -> None:
        """Stop reading (nobody is subscribed); synchronous, so `subscribe` sees one state."""
        for task in (self.runner, self.listener):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self.waker is not None:
            broadcast.remove_waker(self.waker)
            self.waker = None
        executor = self.executor
        if executor is not None:
            executor.submit(connection.close)
            executor.shutdown(wait=False)
        self.runner = self.listener = self.executor = None
        self.cursor = None
        self.seen, self.seen_ids = [], set()

    def _push(self, events: Sequence[schema.Event]) -> None:
        """Deliver what this process has just committed, then read the store as for any wake-up.

        The read finds these events after the cursor and skips them (`seen_ids`); it is still
        what moves the cursor and finds other processes' and late commits.
        """
        if self.runner is None:
            return
        if not self._caught_up():
            # A starved or backlogged tail: these would overtake stored events it has yet to
            # read (by more than a reconnecting page's backfill looks back); read in order.
            self.wake.set()
            return
        new = [e for e in events if e.id not in self.seen_ids and e.received is not None]
        if new:
            self._deliver(sorted(new, key=lambda e: (e.received, e.id)))
        self.wake.set()

    def _caught_up(self) -> bool:
        """Whether the last read found the end of the log, recently (reads come every tick)."""
        return (
            not self.backlogged
            and asyncio.get_running_loop().time() - self.read_done_at < PUSH_FRESH_SECONDS
        )

    async def _in_thread(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, _with_connection, function, *args
        )

    async def _run(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            next_long = loop.time() + TICK_SECONDS
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), TICK_SECONDS)
                self.wake.clear()
                if not self.subscriptions:
                    self._stop()
                    return
                long = loop.time() >= next_long
                if long:
                    next_long = loop.time() + TICK_SECONDS
                try:
                    more = await self._read_once(LONG_OVERLAP if long else SHORT_OVERLAP)
                except Exception as exc:
                    if _cancelling():
                        raise asyncio.CancelledError from exc
                    logger.exception("live: reading the log failed; retrying")
                    await asyncio.sleep(TICK_SECONDS / 4)
                    self.wake.set()
                    continue
                if more:
                    self.wake.set()
        except asyncio.CancelledError:
            if self.runner is asyncio.current_task():
                self._stop()
            raise

    async def _read_once(self, overlap: timedelta) -> bool:
        """Read and deliver what follows the cursor; True when there is more to read at once."""
        cursor = self.cursor
        since = cursor[0] - overlap if cursor is not None else None
        # Only what was delivered in [since, cursor] compares with the stored count; events
        # pushed by this process's commits (`_push`) may lie past the cursor.
        seen_in_window = (
            bisect.bisect_right(self.seen, cursor) - bisect.bisect_left(self.seen, (since,))
            if since
            else 0
        )
        fresh, late = await self._in_thread(_read, cursor, since, seen_in_window, self.seen_ids)
        self.reads += 1
        self.read_done_at = asyncio.get_running_loop().time()
        self.backlogged = len(fresh) == READ_LIMIT
        if late is not None:
            stored_behind, events = late
            self._forget_unstored(since, cursor, stored_behind)
            if events:
                logger.info("live: %d events committed behind the cursor", len(events))
                self._deliver(events)
        if fresh:
            self._deliver([e for e in fresh if e.id not in self.seen_ids])
            self.cursor = (fresh[-1].received, fresh[-1].id)
        if since is not None:
            self._forget_before(self.cursor[0] - LONG_OVERLAP)
        return len(fresh) == READ_LIMIT

    def _deliver(self, events: list[schema.Event]) -> None:
        for event in events:
            if event.id not in self.seen_ids:
                self.seen_ids.add(event.id)
                bisect.insort(self.seen, (event.received, event.id))
        items = [LiveEvent(e) for e in events]
        # Subscribers whose filters differ only in their occurred window (every API subscriber's
        # starts at its connection) share one evaluation of the rest: one `matches()` per shape
        # and event, not per subscriber and event.
        by_shape: dict[str, list[LiveEvent]] = {}
        for subscription in list(self.subscriptions):
            matching = by_shape.get(subscription.shape_key)
            if matching is None:
                matches = subscription.shape.matches
                matching = by_shape[subscription.shape_key] = [
                    item for item in items if matches(item.event)
                ]
            subscription.offer(matching)

    def _forget_before(self, limit: datetime) -> None:
        cut = bisect.bisect_left(self.seen, (limit,))
        if cut:
            for _received, event_id in self.seen[:cut]:
                self.seen_ids.discard(event_id)
            del self.seen[:cut]

    def _forget_unstored(
        self, since: datetime, cursor: queries.Cursor, stored: set[uuid.UUID]
    ) -> None:
        """Drop delivered ids that are no longer stored (retention), so the counts agree again."""
        start = bisect.bisect_left(self.seen, (since,))
        end = bisect.bisect_right(self.seen, cursor)
        gone = [entry for entry in self.seen[start:end] if entry[1] not in stored]
        for entry in gone:
            self.seen.remove(entry)
            self.seen_ids.discard(entry[1])

    async def _listen(self) -> None:
        """Wake the runner on every notification; rejoin the group whenever the layer failed."""
        layer = get_channel_layer()
        if layer is None:
            return
        delay = 0.05
        renewal: asyncio.Task | None = None
        channel = None
        try:
            while True:
                try:
                    if channel is None:
                        channel = await layer.new_channel("live.")
                    await layer.group_add(GROUP, channel)
                    if renewal is None or renewal.done():
                        renewal = asyncio.create_task(self._renew(layer, channel))
                    while True:
                        message = await layer.receive(channel)
                        if message.get("origin") != broadcast.ORIGIN:  # ours came directly
                            self.wake.set()
                        delay = 0.05
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if _cancelling():  # the layer turned our cancellation into its own error
                        raise asyncio.CancelledError from exc
                    logger.warning("live: channel layer failed (%s); rejoining", exc)
                    self.wake.set()  # read the store meanwhile: it needs no layer
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, REJOIN_MAX_SECONDS)
        finally:
            if renewal is not None:
                renewal.cancel()
            if channel is not None:
                asyncio.get_running_loop().create_task(_leave(layer, channel))

    async def _renew(self, layer, channel: str) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await layer.group_add(GROUP, channel)
            except Exception as exc:
                if _cancelling():
                    raise asyncio.CancelledError from exc
                logger.warning("live: renewing the group failed (%s)", exc)


def subscription_filter(raw: Any, max_backfill: timedelta) -> EventFilter:
    """An API subscriber's filter (`/api/events/out`): since clamped to the backfill window, ascending, open-ended.

    A filter that names no `until` would default to "now" and so match no live event; for a
    subscription it means "no end" (the Prefect client always sends now + 1 year).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("the filter must be a JSON object")
    now = timezone.now()
    occurred = raw.get("occurred")
    if occurred is None or (isinstance(occurred, dict) and occurred.get("until") is None):
        occurred = {**(occurred or {}), "until": (now + timedelta(days=365)).isoformat()}
        raw = {**raw, "occurred": occurred}
    event_filter = EventFilter.model_validate(raw)
    since = max(event_filter.occurred.since, now - max_backfill)
    return event_filter.model_copy(
        update={
            "occurred": event_filter.occurred.model_copy(update={"since": since}),
            "order": "ASC",
        }
    )


_OPEN = OccurredFilter(
    since=datetime.min.replace(tzinfo=UTC), until=datetime.max.replace(tzinfo=UTC)
)


def _shape(event_filter: EventFilter) -> tuple[str, EventFilter]:
    """The filter without its occurred window, and a key equal for equal shapes."""
    shape = event_filter.model_copy(update={"occurred": _OPEN})
    return shape.model_dump_json(), shape


def _cancelling() -> bool:
    """Whether the running task was asked to stop (a library may raise its own error instead)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _leave(layer, channel: str) -> None:
    with contextlib.suppress(Exception):  # the layer is gone: the membership expires on its own
        await layer.group_discard(GROUP, channel)


def _with_connection(function, *args):
    # On SQLite the tail's thread keeps its connection between reads (opening one per read was a
    # tenth of the tail's time); a pooled PostgreSQL connection goes back to the pool after each
    # read, so the tail never holds a slot the requests need. A failed read drops it.
    try:
        return function(*args)
    except Exception:
        connection.close()
        raise
    finally:
        if connection.vendor != "sqlite":
            connection.close()


def _start_position(overlap: timedelta):
    cursor = queries.last_received()
    if cursor is None:
        return None, {}
    return cursor, queries.received_behind(cursor, since=cursor[0] - overlap)


def _read(cursor, since, seen_in_window: int, seen_ids: set):
    """The events after `cursor`; and, when the count behind it over [since, cursor] differs
    from what was delivered, the stored ids there and the events among them not yet delivered."""
    if cursor is None:
        return queries.read_after(None, limit=READ_LIMIT), None
    fresh, behind = queries.read_after_counting_behind(cursor, since=since, limit=READ_LIMIT)
    late = None
    if behind != seen_in_window:
        stored = queries.received_behind(cursor, since=since)
        missing = [event_id for event_id in stored if event_id not in seen_ids]
        late = (set(stored), queries.events_by_ids(missing) if missing else [])
    return fresh, late


_tails: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Tail] = weakref.WeakKeyDictionary()


def tail() -> Tail:
    """The running event loop's tail."""
    loop = asyncio.get_running_loop()
    found = _tails.get(loop)
    if found is None:
        found = _tails[loop] = Tail()
    return found


async def subscribe(
    event_filter: EventFilter, *, max_pending: int, on_too_slow: Callable[[str], None]
) -> Subscription:
    """Follow the stored log for one socket (see the module docstring)."""
    return await tail().subscribe(event_filter, max_pending=max_pending, on_too_slow=on_too_slow)
