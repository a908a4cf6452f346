"""Trigger semantics: Prefect's event, compound and sequence triggers as pure code.

No database, no engine and no wall clock in here: every function takes the state it reads and
writes (`State`) and the time it evaluates at. The engine keeps `State` in the database; the
form's preview and the "why did it fire" page run the very same code over stored events.

- `definitions`: the trigger models and `parse_trigger`;
- `state`: windows (`Bucket`), `Firing`, `State`;
- `evaluator`: `Evaluator` (on_event / on_tick) and `simulate`;
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
from automations.triggers.evaluator import AutomationSpec, Evaluator, simulate
from automations.triggers.ordering import Ordering
from automations.triggers.state import Bucket, BucketId, Firing, State

__all__ = [
    "EXPIRED_BUCKET_BUFFER",
    "FOLLOWER_WAIT",
    "HELD_EVENTS_RETENTION",
    "LOOKBACK",
    "MAX_FOLLOWER_DEPTH",
    "NEVER_EVALUATED",
    "PROACTIVE_MINIMUM_WITHIN",
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
    "SequenceTrigger",
    "State",
    "TriggerInvalid",
    "describe",
    "explain",
    "find_resource_label",
    "parse_trigger",
    "simulate",
    "trigger_from_event",
    "validation_errors",
]
