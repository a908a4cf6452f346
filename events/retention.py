"""Retention: remove events older than the configured period.

SQLite: DELETE in small batches. PostgreSQL: whole day partitions are dropped (`events.partitions`)
and only the default partition's stragglers are deleted row by row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from events import partitions, rollups
from events.audit import AUDIT_EVENTS
from events.models import Event, EventResource, WebhookRequest

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000


def prune(
    *,
    before: datetime | None = None,
    audit_before: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete events (and their resource rows) that occurred before `before`; return how many.

    Audit events (`events.audit.AUDIT_EVENTS`) are kept apart, until `audit_before`
    (default: `EVENTSITE_AUDIT_RETENTION` ago). Each batch is its own short transaction, so
    writers wait at most one batch for the lock.
    """
    now = timezone.now()
    # Whole hours only, so the per-minute and per-hour rollups drop whole rows and stay exact.
    before = rollups.floor(before or now - settings.EVENTSITE_EVENT_RETENTION, rollups.HOUR)
    audit_before = rollups.floor(
        audit_before or now - settings.EVENTSITE_AUDIT_RETENTION, rollups.HOUR
    )
    audit = Q(event__in=AUDIT_EVENTS)
    deleted = 0
    partitioned = partitions.enabled()
    if partitioned:
        # PostgreSQL: whole days. Make the coming days' partitions, drop the days that ended
        # before the cut (keeping their audit events), and DELETE below only what the default
        # partition holds. An event goes with its whole UTC day, so it is kept up to a day longer.
        partitions.ensure_days()
        before = rollups.floor(before, 24 * rollups.HOUR)
        deleted = partitions.drop_days_before(
            before, keep_names=sorted(AUDIT_EVENTS), keep_since=audit_before, progress=progress
        )
    for cut, expired in ((before, ~audit), (audit_before, audit)):
        while True:
            with transaction.atomic():
                ids = list(
                    Event.objects.filter(expired, occurred__lt=cut)
                    .order_by("occurred")
                    .values_list("id", flat=True)[:batch_size]
                )
                if not ids:
                    break
                # Resource rows first, then the events by primary key. On the partitioned log both
                # are bounded by the cut (a row shares its event's occurred), so PostgreSQL reads
                # only the partitions before it; elsewhere every row of those events goes.
                rows = EventResource.objects.filter(event_id__in=ids)
                if partitioned:
                    rows = rows.filter(occurred__lt=cut)
                rows._raw_delete(connection.alias)
                Event.objects.filter(id__in=ids, occurred__lt=cut)._raw_delete(connection.alias)
                if partitioned:
                    partitions.forget_ids(ids)
            deleted += len(ids)
            if progress:
                progress(deleted)
    rollups.forget_before(before, names_q=~audit)
    rollups.forget_before(audit_before, names_q=audit)
    return deleted


def prune_webhook_requests(*, before: datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Delete webhook request-log rows older than `EVENTSITE_WEBHOOK_LOG_RETENTION`."""
    before = before or timezone.now() - settings.EVENTSITE_WEBHOOK_LOG_RETENTION
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                WebhookRequest.objects.filter(received__lt=before)
                .order_by("received")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            # Replays point at the rows they repeat; unlink them before those rows go.
            WebhookRequest.objects.filter(replay_of_id__in=ids).update(replay_of=None)
            WebhookRequest.objects.filter(id__in=ids)._raw_delete(connection.alias)
        deleted += len(ids)


def run_forever(stop: threading.Event) -> None:
    """The periodic pruning service of `manage.py serve`."""
    interval = settings.EVENTSITE_PRUNE_INTERVAL.total_seconds()
    while not stop.is_set():
        try:
            count = prune()
            prune_webhook_requests()
            if count:
                logger.info(
                    "retention: deleted %d events older than %s",
                    count,
                    settings.EVENTSITE_EVENT_RETENTION,
                )
        except Exception:
            logger.exception("retention pass failed; will retry")
        finally:
            close_old_connections()
        stop.wait(interval)
