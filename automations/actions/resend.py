"""Resending failed action runs: one, or all of an automation's since a time; each audited.

A resent run goes back in the queue as it was when the automation fired (same action, same
event, same delivery id, so a receiver can still drop repeats): pending, due now, with a fresh
retry schedule; its attempts go on being numbered after the ones it made before (`resent_after`
says where the fresh schedule starts). The engine takes it up within a second, like any due retry. Test sends are not
resent in bulk.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from automations.models import ActionRun, Automation
from events import audit

LISTED = 100  # run ids an audit event names


def failed_since(automation: Automation, since: datetime):
    """The automation's failed runs (not test sends) that finished at or after `since`."""
    return ActionRun.objects.filter(
        automation=automation,
        status=ActionRun.Status.FAILED,
        firing__is_test=False,
        finished__gte=since,
    )


def resend(run: ActionRun) -> bool:
    """Queue one failed run again; False when it is not failed (any more)."""
    return _requeue(run.automation, ActionRun.objects.filter(pk=run.pk), since=None) == 1


def resend_failed(automation: Automation, *, since: datetime) -> int:
    """Queue every run of `automation` that failed since `since`; how many were queued."""
    return _requeue(automation, failed_since(automation, since), since=since)


def _requeue(automation: Automation, runs, *, since: datetime | None) -> int:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            runs.filter(status=ActionRun.Status.FAILED)
            .select_for_update()
            .values_list("id", flat=True)
        )
        if not ids:
            return 0
        # Only a run still failed is taken: a concurrent resend finds none left.
        count = ActionRun.objects.filter(pk__in=ids, status=ActionRun.Status.FAILED).update(
            status=ActionRun.Status.PENDING,
            resent_after=F("attempts"),
            next_attempt=now,
            finished=None,
            updated=now,
        )
        details = {"count": count, "runs": [str(i) for i in ids[:LISTED]]}
        if since is not None:
            details["since"] = since.isoformat()
        audit.record(audit.AUTOMATION_RESENT, target=automation, details=details)
    return count
