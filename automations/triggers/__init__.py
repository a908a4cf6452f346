"""Trigger semantics: Prefect's event, compound and sequence triggers as pure code.

No database, no engine and no wall clock in here: every function takes the state it reads and
writes (`State`) and the time it evaluates at. The engine keeps `State` in the database; the
form's preview and the "why did it fire" page run the very same code over stored events.

- `definitions`: the trigger models and `parse_trigger`;
- `state`: windows (`Bucket`), `Firing` (Triggered or Resolved), open outages (`Outage`), `State`;
- `evaluator`: `Evaluator` (on_event / on_tick);
- `simulation`: `replay`, the engine's loop over stored events (preview and explain);
- `ordering`: events wait for the event they `follow`;
- `describe`: triggers in words, "Automate" prefill, clause-by-clause `explain`.
"""

from automations.triggers.definitions import (
    EXPIRED_BUCKET_BUFFER,
    FOLLOWER_WAIT,
    HELD_EVENTS_RETENTION,
    LOOKBACK,
    MAX_FOLLOWER_DEPTH,
    NEVER_EVALUATED,
    PROACTIVE_MINIMUM_WITHIN,
    SWEEP_EVERY,
    TRIGGER_TYPES,
    CompoundTrigger,
    EventTrigger,
    SequenceTrigger,
    TriggerInvalid,
    find_resource_label,
    parse_trigger,
    validation_errors,
)
from automations.triggers.describe import Clause, describe, explain, trigger_from_event
from automations.triggers.evaluator import AutomationSpec, Evaluator
from automations.triggers.ordering import Ordering
from automations.triggers.simulation import Replay, read_order, replay
from automations.triggers.state import (
    RESOLVED,
    TRIGGERED,
    Bucket,
    BucketId,
    Firing,
    Outage,
    State,
)

__all__ = [
    "EXPIRED_BUCKET_BUFFER",
    "FOLLOWER_WAIT",
    "HELD_EVENTS_RETENTION",
    "LOOKBACK",
    "MAX_FOLLOWER_DEPTH",
    "NEVER_EVALUATED",
    "PROACTIVE_MINIMUM_WITHIN",
    "RESOLVED",
    "SWEEP_EVERY",
    "TRIGGERED",
    "TRIGGER_TYPES",
    "AutomationSpec",
    "Bucket",
    "BucketId",
    "Clause",
    "CompoundTrigger",
    "Evaluator",
    "EventTrigger",
    "Firing",
    "Ordering",
    "Outage",
    "Replay",
    "SequenceTrigger",
    "State",
    "TriggerInvalid",
    "describe",
    "explain",
    "find_resource_label",
    "parse_trigger",
    "read_order",
    "replay",
    "trigger_from_event",
    "validation_errors",
]
