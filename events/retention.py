"""Retention: delete events older than the configured period, in small batches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from events import rollups
from events.models import Event, EventResource

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000


def prune(
    *,
    before: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete events (and their resource rows) that occurred before `before`; return how many.

    Each batch is its own short transaction, so writers wait at most one batch for the lock.
    """
    # Whole hours only, so the per-minute and per-hour rollups drop whole rows and stay exact.
    before = rollups.floor(
        before or timezone.now() - settings.EVENTSITE_EVENT_RETENTION, rollups.HOUR
    )
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                Event.objects.filter(occurred__lt=before)
                .order_by("occurred")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            # Resource rows first, by their own occurred index, then the events by primary key.
            EventResource.objects.filter(event_id__in=ids)._raw_delete(connection.alias)
            Event.objects.filter(id__in=ids)._raw_delete(connection.alias)
        deleted += len(ids)
        if progress:
            progress(deleted)
    rollups.forget_before(before)
    return deleted


def run_forever(stop: threading.Event) -> None:
    """The periodic pruning service of `manage.py serve`."""
    interval = settings.EVENTSITE_PRUNE_INTERVAL.total_seconds()
    while not stop.is_set():
        try:
            count = prune()
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
