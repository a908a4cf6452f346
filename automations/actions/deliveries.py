"""The delivery log: every attempt of every action run, as a `Delivery` row.

An action describes what it sent and what came back as an `Exchange`; `Action.run` records it
with the attempt's outcome (`record`). The automation page lists them; "Send test" shows the
one it just made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from automations.models import ActionRun, Delivery

BODY_LIMIT = 16_384


def excerpt(text: str, limit: int = BODY_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit} more characters)"


@dataclass
class Exchange:
    """What one attempt sent and what it got back (no secrets: see `Action.run`)."""

    summary: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)


def record(
    *,
    invocation: uuid.UUID,
    kind: str,
    started: datetime,
    outcome: str,
    exchange: Exchange | None,
    error: str = "",
    max_attempts: int,
) -> Delivery | None:
    """Store one attempt of the run `invocation`; None when the run is not stored (a dry run)."""
    run = ActionRun.objects.filter(pk=invocation).select_related("firing").first()
    if run is None:
        return None
    exchange = exchange or Exchange()
    if outcome == Delivery.Outcome.RETRYING and run.attempts - run.resent_after >= max_attempts:
        outcome = Delivery.Outcome.FAILED  # the last attempt: nothing comes after it
    return Delivery.objects.create(
        run=run,
        automation_id=run.automation_id,
        attempt=max(run.attempts, 1),
        kind=kind,
        started=started,
        finished=timezone.now(),
        outcome=outcome,
        summary=exchange.summary or (error.splitlines()[0][:300] if error else ""),
        request=exchange.request,
        response=exchange.response,
        error=error,
        is_test=run.firing.is_test,
    )
