"""The automation engine: a consumer of the stored event log.

It reads stored events after a durable cursor, evaluates them with `automations.triggers`
(pure), and in ONE transaction per batch writes the trigger state, the firings and their events,
the pending action runs and the cursor: a crash loses and repeats nothing (the whole batch is
recorded, or none and it is read again). Actions run later in worker threads.

Reading the log in order. The write path stamps `received` before its transaction commits, so
two concurrent writers can commit out of `received` order: a reader that already moved past
`received = t` could miss an event stamped t − ε that commits later. The cursor therefore reads
by keyset on (received, id), and a catch-up pass compares, over the last `OVERLAP` of the log
behind the cursor, the number of stored events with the number the engine has seen; only when
they differ does it list the ids and evaluate the ones it has not seen. Seen ids of events that
changed trigger state are durable (`SeenEvent`, written in the batch transaction), so after a
restart an event is never counted twice; events that matched no trigger changed nothing, so
evaluating them again is harmless and they need no record.

Two engines. Each batch locks the cursor row and checks its `version`: if another engine wrote
since, the batch is dropped and the state reloaded, so no firing is recorded twice. A
deployment-wide lock (`eventsite.locks`) makes one engine active, the others standbys."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from automations import actions, state_rows
from automations.firings import record_firings
from automations.models import (
    ActionRun,
    Automation,
    EngineCursor,
    ParkedEvent,
    SeenEvent,
)
from automations.triggers import (
    SWEEP_EVERY,
    AutomationSpec,
    Evaluator,
    Firing,
    Ordering,
    State,
    TriggerInvalid,
    parse_trigger,
)
from events import queries, wakeup
from events.schema import Event
from events.sql_params import sql_adapters
from eventsite.locks import DeploymentLock

logger = logging.getLogger(__name__)

LATE_CHECK_EVERY = timedelta(seconds=1)
CURSOR_WRITE_EVERY = timedelta(seconds=1)
DUE_CHECK_EVERY = timedelta(seconds=1)  # action runs due for a retry
STALE_RUNNING = timedelta(minutes=10)


# How often an active engine makes sure it still holds its lock (a lost connection loses it).
LEADERSHIP_CHECK_EVERY = timedelta(seconds=5)


class _Stale(Exception):
    """Another engine wrote since this one loaded its state."""


class Engine:
    """One engine instance. Call `step()` and `tick()` (or `run_forever`)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        clock: Callable[[], datetime] = timezone.now,
        batch_size: int | None = None,
        overlap: timedelta | None = None,
    ):
        self.name = name or EngineCursor.DEFAULT
        self.clock = clock
        self.batch_size = batch_size or settings.EVENTSITE_ENGINE_BATCH
        self.overlap = overlap or settings.EVENTSITE_ENGINE_OVERLAP
        self.loaded = False
        self.new_runs: list[uuid.UUID] = []
        self.leadership = DeploymentLock(f"engine:{name}")
        self._leader_until = 0.0  # time.monotonic() until which leadership needs no re-check

    # --- loading -------------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)load everything from the database: cursor, automations, trigger state."""
        row, new = self._cursor_row()
        self.version = row.version
        self.cursor: tuple[datetime, uuid.UUID] | None = (
            (row.received, row.event_id) if row.received else None
        )
        self.state = State()
        self.persisted: set[tuple] = set()  # bucket idents that have a row
        self.snapshot = None
        self._refresh_automations(force=True, load_state=True)
        self.ordering = Ordering()
        self.parked_ids: set[uuid.UUID] = set()
        parked = list(ParkedEvent.objects.all())
        stored = {e.id: e for e in queries.events_by_ids(p.event_id for p in parked)}
        for p in parked:
            if p.event_id in stored:
                self.ordering.park(stored[p.event_id])
                self.parked_ids.add(p.event_id)
        self.seen: dict[uuid.UUID, datetime] = {}
        # A new engine starts at the end of the log; nothing before that point is late for it.
        known = getattr(self, "horizon", None)
        self.horizon: datetime | None = known or (self.cursor[0] if new and self.cursor else None)
        if self.cursor:
            since = self.cursor[0] - self.overlap
            self.seen = dict(
                SeenEvent.objects.filter(received__gte=since).values_list("event_id", "received")
            )
            for p in parked:
                self.seen[p.event_id] = p.received
        self.next_late_check = self.clock()
        self.cursor_written = self.clock()
        self.next_sweep = self.clock()
        self.loaded = True

    def _cursor_row(self) -> tuple[EngineCursor, bool]:
        row = EngineCursor.objects.filter(name=self.name).first()
        if row is not None:
            return row, False
        # A new engine starts at the end of the log: it reacts to what happens from now on. One
        # whose row went away under it (the test suite's flush) goes on from where it was.
        known = getattr(self, "cursor", None)
        start = known or queries.last_received()
        try:
            row = EngineCursor.objects.create(
                name=self.name, received=start and start[0], event_id=start and start[1]
            )
        except IntegrityError:  # another engine created it first
            return EngineCursor.objects.get(name=self.name), False
        return row, known is None

    def _refresh_automations(self, *, force: bool = False, load_state: bool = False) -> None:
        snapshot = tuple(
            Automation.objects.aggregate(
                n=Count("id"), u=Max("updated"), e=Count("id", filter=Q(enabled=True))
            ).values()
        )
        if not force and snapshot == self.snapshot:
            return
        self.snapshot = snapshot
        self.automations: dict[uuid.UUID, Automation] = {}
        self.enabled_since: dict[uuid.UUID, datetime] = {}  # trigger id → its automation's
        specs = []
        for automation in Automation.objects.filter(enabled=True):
            try:
                trigger = parse_trigger(automation.trigger)
            except TriggerInvalid as exc:  # saved through every validator; only a bug gets here
                logger.error("automation %s has an invalid trigger: %s", automation.id, exc)
                continue
            self.automations[automation.id] = automation
            specs.append(AutomationSpec(id=automation.id, trigger=trigger, name=automation.name))
            if automation.enabled_since is not None:
                for t in trigger.all_triggers():
                    self.enabled_since[t.id] = automation.enabled_since
        if load_state:
            children = state_rows.load(
                self.state, [t.id for s in specs for t in s.trigger.all_triggers()], self.persisted
            )
        self.evaluator = Evaluator(specs, self.state)
        if load_state:
            state_rows.load_child_firings(self.state, children, self.evaluator.triggers)
            self.state.clean()

    def _ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    # --- evaluating the log --------------------------------------------------------------------

    def step(self) -> int:
        """Read and evaluate the next batch of stored events; return how many were read."""
        self._ensure_loaded()
        now = self.clock()
        self._refresh_automations()
        if not self.automations and not self.parked_ids:
            return self._skip_to_end(now)
        late = self._late_events(now)
        rows = self._read_batch()
        if not rows and not late:
            return 0
        work = _Work()
        for event in late + rows:
            self.seen[event.id] = event.received
            self._admit(event, now, work)
        cursor = (rows[-1].received, rows[-1].id) if rows else self.cursor
        if not self._commit(work, cursor, now):
            return 0
        return len(rows) + len(late)

    def _skip_to_end(self, now: datetime) -> int:
        """No enabled automation: move the cursor to the end without reading what it passes. A
        commit that reloaded the state is made again (a cursor behind the horizon would read)."""
        last = queries.last_received(since=self.cursor[0] if self.cursor else None)
        if last is None or (self.cursor is not None and last <= self.cursor):
            return 0
        self._refresh_automations()  # one enabled since the last look may be waiting for `last`
        if self.automations:
            return 0
        self.horizon = last[0]
        self.seen = {}
        if not self._commit(_Work(), last, now) and not self.automations:
            self._commit(_Work(), last, now)
        return 0

    def _read_batch(self) -> list[Event]:
        return queries.read_after(self.cursor, limit=self.batch_size)

    def _late_events(self, now: datetime) -> list[Event]:
        """Events committed behind the cursor since it passed them (see the module docstring)."""
        if self.cursor is None or now < self.next_late_check:
            return []
        self.next_late_check = now + LATE_CHECK_EVERY
        since = self.cursor[0] - self.overlap
        if self.horizon is not None and self.horizon >= since:
            # Skipped over with no automation enabled (`_skip_to_end`): look only after it.
            since = self.horizon + timedelta(microseconds=1)
        self.seen = {k: v for k, v in self.seen.items() if v >= since}
        if queries.count_behind(self.cursor, since=since) == len(self.seen):
            return []
        stored = queries.received_behind(self.cursor, since=since)
        missing = [i for i in stored if i not in self.seen]
        # Ids seen but no longer stored (retention) are dropped, so the counts agree again.
        self.seen = {i: r for i, r in self.seen.items() if i in stored}
        if not missing:
            return []
        logger.info("engine: %d events committed behind the cursor", len(missing))
        return queries.events_by_ids(missing)

    def _admit(self, event: Event, now: datetime, work: _Work) -> None:
        released = self.ordering.admit(event, now, self._leader_seen)
        if not released:
            self.parked_ids.add(event.id)
            work.parked.append(event)
            return
        for e in released:
            if e.id in self.parked_ids:
                self.parked_ids.discard(e.id)
                work.unparked.append(e.id)
            self._evaluate(e, now, work, read_at=event.received)

    def _leader_seen(self, leader: uuid.UUID) -> bool:
        if leader in self.parked_ids:
            return False
        if leader in self.seen:
            return True
        # Older than the window the engine remembers, or passed over by `_skip_to_end`: it was
        # read (the replay's differential test found followers of skipped leaders waiting).
        received = queries.received_of(leader)
        if received is None or self.cursor is None:
            return False
        skipped = self.horizon is not None and received <= self.horizon
        return skipped or received < self.cursor[0] - self.overlap

    def _evaluate(self, event: Event, now: datetime, work: _Work, *, read_at: datetime) -> None:
        """`read_at`: the event's place in the log's order (`received` of the event read, or the
        tick's time for a follower released by it). An automation reacts only to what comes after
        it was enabled, however far behind the log the engine reads (as the replay does)."""
        triggers = self.evaluator.interested(event)
        if triggers and self.enabled_since:
            since = self.enabled_since
            triggers = [t for t in triggers if t.id not in since or read_at >= since[t.id]]
        if not triggers:
            return
        work.covered.append(event)
        work.fired += self.evaluator.on_event(event, clock=now, triggers=triggers)

    def tick(self) -> int:
        """Proactive evaluation, lost followers and housekeeping; return the firings made."""
        self._ensure_loaded()
        now = self.clock()
        self._refresh_automations()
        work = _Work()
        for event in self.ordering.lost(now):
            self.parked_ids.discard(event.id)
            work.unparked.append(event.id)
            self._evaluate(event, now, work, read_at=now)
        work.fired += self.evaluator.on_tick(now)
        if now >= self.next_sweep:
            # O(buckets): often enough to bound memory, rarely enough to stay off the hot path.
            self.evaluator.sweep(now)
            self.next_sweep = now + SWEEP_EVERY
        work.housekeeping = True
        if not self._commit(work, self.cursor, now):
            return 0
        ActionRun.objects.filter(
            status=ActionRun.Status.RUNNING, updated__lt=now - STALE_RUNNING
        ).update(status=ActionRun.Status.PENDING, next_attempt=now)
        return len(work.fired)

    # --- writing -------------------------------------------------------------------------------

    def _commit(self, work: _Work, cursor, now: datetime) -> bool:
        """Write the batch; False if another engine wrote first (the state is then reloaded)."""
        state = self.state
        dirty = state.dirty_buckets or state.dirty_held or state.dirty_children
        changed = dirty or work.fired or work.parked or work.unparked or work.covered
        if not (changed or work.housekeeping):
            # Events that matched nothing changed nothing: move the cursor in memory only and
            # write it with the next change or once a second. After a crash they are read again,
            # which is harmless, and writers are not made to wait for this engine on every poll.
            if cursor == self.cursor:
                return True
            if now - self.cursor_written < CURSOR_WRITE_EVERY:
                self.cursor = cursor
                return True
        new_runs: list[uuid.UUID] = []
        try:
            with transaction.atomic():
                row = EngineCursor.objects.select_for_update().filter(name=self.name).first()
                if row is None or row.version != self.version:
                    raise _Stale
                state_rows.write(self.state, self.evaluator, self.persisted, self.clock)
                if work.covered:
                    uid, dt, _, _ = sql_adapters()
                    table = connection.ops.quote_name(SeenEvent._meta.db_table)
                    with connection.cursor() as db:
                        db.executemany(
                            f"INSERT INTO {table} (event_id, received) VALUES (%s, %s) "
                            "ON CONFLICT DO NOTHING",
                            [(uid(e.id), dt(e.received)) for e in work.covered],
                        )
                if work.parked:
                    ParkedEvent.objects.bulk_create(
                        [
                            ParkedEvent(event_id=e.id, leader_id=e.follows, received=e.received)
                            for e in work.parked
                        ],
                        ignore_conflicts=True,
                    )
                if work.unparked:
                    ParkedEvent.objects.filter(event_id__in=work.unparked).delete()
                if work.housekeeping and self.cursor:
                    SeenEvent.objects.filter(received__lt=self.cursor[0] - self.overlap).delete()
                new_runs += record_firings(
                    [
                        (self.automations[self.evaluator.owner[f.trigger.id].id], f)
                        for f in work.fired
                    ]
                )
                row.version += 1
                if cursor is not None:
                    row.received, row.event_id = cursor
                row.save()
        except _Stale:
            logger.info("engine %s: another engine wrote first; reloading", self.name)
            self.loaded = False
            return False
        except Exception:
            # Nothing of this batch was recorded: start again from what the database holds.
            self.loaded = False
            raise
        self.version = row.version
        self.cursor = cursor
        self.cursor_written = now
        state.clean()
        self.new_runs += new_runs
        return True

    # --- actions -------------------------------------------------------------------------------

    def due_runs(self, limit: int = 100) -> list[uuid.UUID]:
        return list(
            ActionRun.objects.filter(
                status=ActionRun.Status.PENDING, next_attempt__lte=self.clock()
            )
            .order_by("next_attempt")
            .values_list("id", flat=True)[:limit]
        )

    def run_actions(self) -> int:
        """Perform every due action run here and now (tests and `run_engine --once`)."""
        done = 0
        for run_id in [*self.new_runs, *self.due_runs()]:
            if actions.perform(run_id, now=self.clock) is not None:
                done += 1
        self.new_runs = []
        return done

    # --- leadership (PostgreSQL) ---------------------------------------------------------------

    def is_leader(self) -> bool:
        """On PostgreSQL, whether this engine is the active one of its name (taking it if free).

        The lock is held on a connection of its own (`eventsite.locks.DeploymentLock`): a session
        lock taken on Django's connection would go back to the pool with it and keep every
        engine, this one included, a standby for good.
        """
        if connection.vendor != "postgresql":
            return True
        if time.monotonic() < self._leader_until:
            return True
        if not self.leadership.held():
            if not self.leadership.acquire():
                return False
            self.loaded = False  # whoever held it before may have moved on: reload
        self._leader_until = time.monotonic() + LEADERSHIP_CHECK_EVERY.total_seconds()
        return True

    def stand_down(self) -> None:
        """Give up leadership (on PostgreSQL), so a standby takes over at once."""
        self.leadership.release()
        self._leader_until = 0.0


class _Work:
    """What one batch did, to be written in one transaction."""

    def __init__(self) -> None:
        self.fired: list[Firing] = []
        self.covered: list[Event] = []
        self.parked: list[Event] = []
        self.unparked: list[uuid.UUID] = []
        self.housekeeping = False


# --- the service ---------------------------------------------------------------------------------


def run_forever(stop: threading.Event, *, engine: Engine | None = None) -> None:
    """The engine service of `manage.py serve` and `manage.py run_engine`.

    Reads the log when woken by a store (`events.wakeup`: in this process, or through
    LISTEN/NOTIFY on PostgreSQL) and at least every `EVENTSITE_ENGINE_POLL` (a safety poll: an
    index probe), runs the proactive tick every `EVENTSITE_ENGINE_TICK`, and hands action runs
    to worker threads.
    """
    engine = engine or Engine()
    poll = settings.EVENTSITE_ENGINE_POLL.total_seconds()
    tick_every = settings.EVENTSITE_ENGINE_TICK
    wake = wakeup.Wakeup(stop)
    workers = ThreadPoolExecutor(
        max_workers=settings.EVENTSITE_ACTION_WORKERS, thread_name_prefix="automation-action"
    )
    in_flight: set[uuid.UUID] = set()
    lock = threading.Lock()

    def perform(run_id: uuid.UUID) -> None:
        try:
            actions.perform(run_id)
        except Exception:
            logger.exception("action run %s failed to record", run_id)
        finally:
            with lock:
                in_flight.discard(run_id)
            close_old_connections()

    def submit(run_ids: list[uuid.UUID]) -> None:
        for run_id in run_ids:
            with lock:
                if run_id in in_flight:
                    continue
                in_flight.add(run_id)
            workers.submit(perform, run_id)

    next_tick = timezone.now()
    next_due_check = timezone.now()
    try:
        while not stop.is_set():
            try:
                if not engine.is_leader():
                    stop.wait(1.0)
                    continue
                read = engine.step()
                now = timezone.now()
                if now >= next_tick:
                    engine.tick()
                    next_tick = now + tick_every
                submit(engine.new_runs)
                engine.new_runs = []
                if now >= next_due_check:
                    submit(engine.due_runs())
                    next_due_check = now + DUE_CHECK_EVERY
                if not read:
                    # Until new events, the next tick or due-run check, or the safety poll.
                    soonest = min(next_tick, next_due_check) - timezone.now()
                    wake.wait(min(poll, soonest.total_seconds()))
            except Exception:
                logger.exception("engine step failed; retrying")
                close_old_connections()
                stop.wait(1.0)
    finally:
        wake.close()
        workers.shutdown(wait=True, cancel_futures=False)
        engine.stand_down()
        close_old_connections()
