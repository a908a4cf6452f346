"""Severity at a glance: which family of outcome an event reports (failed, completed, …).

One rule, used by the feed's rows, the detail page, the histogram and the counts by event:

1. A resource label `prefect.state-type` (Prefect's state types: `FAILED`, `CRASHED`,
   `COMPLETED`, `RUNNING`, `CANCELLED`, …) decides, when the event carries one;
2. otherwise the last segment of the event name does: Prefect's state names
   (`prefect.flow-run.Failed`, `…TimedOut`, `…Cached`) and the words custom events use
   (`acme.job.failed`, `billing.sync.error`, `deploy.succeeded`).

Counts (the histogram, counts by event) know names only, since the rollups keep names: they use
step 2. Prefect's own events name their state, so both agree for them; a custom event whose label
contradicts its name is counted by its name.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache

STATE_TYPE = "prefect.state-type"


class Severity(StrEnum):
    FAILED = "failed"
    CANCELLED = "cancelled"
    RUNNING = "running"
    COMPLETED = "completed"
    OTHER = "other"

    @property
    def label(self) -> str:
        return LABELS[self]


# Bottom to top in a stacked bar, and the order of a readout: what needs attention first.
ORDER = (
    Severity.FAILED,
    Severity.CANCELLED,
    Severity.RUNNING,
    Severity.COMPLETED,
    Severity.OTHER,
)
LABELS = {
    Severity.FAILED: "failed",
    Severity.CANCELLED: "cancelled",
    Severity.RUNNING: "running",
    Severity.COMPLETED: "completed",
    Severity.OTHER: "other",
}

# Prefect's state types (prefect.client.schemas.objects.StateType).
STATE_TYPES = {
    "FAILED": Severity.FAILED,
    "CRASHED": Severity.FAILED,
    "COMPLETED": Severity.COMPLETED,
    "RUNNING": Severity.RUNNING,
    "CANCELLED": Severity.CANCELLED,
    "CANCELLING": Severity.CANCELLED,
    "SCHEDULED": Severity.OTHER,
    "PENDING": Severity.OTHER,
    "PAUSED": Severity.OTHER,
}

# The last segment of a name, lowercased with separators removed. Prefect's state names
# (`prefect.flow-run.<State name>`) first, then words custom events commonly end with.
NAME_WORDS = {
    Severity.FAILED: (
        "failed crashed timedout error errored errors failure failing fatal rejected aborted"
    ),
    Severity.CANCELLED: "cancelled canceled cancelling canceling",
    Severity.RUNNING: "running retrying started starting inprogress resumed",
    Severity.COMPLETED: "completed cached rolledback succeeded success successful done finished ok",
}
_BY_WORD = {word: severity for severity, words in NAME_WORDS.items() for word in words.split()}
_SEPARATORS = re.compile(r"[-_\s]+")


@lru_cache(maxsize=8192)
def of_name(name: str) -> Severity:
    """The severity an event name alone implies (what counts by name use)."""
    last = name.rpartition(".")[2]
    return _BY_WORD.get(_SEPARATORS.sub("", last).lower(), Severity.OTHER)


def of_event(name: str, resource: dict | None) -> Severity:
    """The severity of one event: its resource's `prefect.state-type`, else its name."""
    state_type = (resource or {}).get(STATE_TYPE)
    if isinstance(state_type, str) and state_type.upper() in STATE_TYPES:
        return STATE_TYPES[state_type.upper()]
    return of_name(name)


def tally(counts_by_name: dict[str, int]) -> dict[Severity, int]:
    """Counts by name → counts by severity (every severity present, zero or not)."""
    out = dict.fromkeys(ORDER, 0)
    for name, count in counts_by_name.items():
        out[of_name(name)] += count
    return out
