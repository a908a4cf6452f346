"""Trigger definitions: Prefect's event, compound and sequence triggers as pydantic models.

`parse_trigger` validates a trigger document (the JSON an automation stores) into these models;
`TriggerInvalid` carries field-level errors. The constants are Prefect 3.9.1's (reference §5.2).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
)

from automations.triggers.state import Firing
from events.labels import glob_matches, labels_match
from events.schema import MAX_CLIENT_INT, Event

# Events that occurred up to this long before the first one of a window still count in it, so
# events that arrive slightly out of order are not lost (Prefect's PRECEDING_EVENT_LOOKBACK).
LOOKBACK = timedelta(minutes=15)
# Proactive triggers need a window at least this long; 0 (or none) means this.
PROACTIVE_MINIMUM_WITHIN = timedelta(seconds=10)
# Buckets that ended this long ago are deleted by the periodic sweep.
EXPIRED_BUCKET_BUFFER = timedelta(seconds=60)
# How often the engine (and its replay) runs that sweep.
SWEEP_EVERY = timedelta(seconds=30)
# Held `expect` events (proactive triggers with `after`) are kept this long.
HELD_EVENTS_RETENTION = 2 * LOOKBACK
# Followers wait at most this long for the event they follow (reference §1.5).
FOLLOWER_WAIT = LOOKBACK
# The longest window a trigger may have: windows are added to event times, which must stay
# within the calendar (and a bucket of ten years outlives any retention).
MAX_WITHIN = timedelta(days=3650)
_NO_TIME = timedelta(0)
# A window as clients send it (seconds, or an ISO 8601 duration) and as it is answered (seconds).
Window = Annotated[
    timedelta,
    Field(le=MAX_WITHIN),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_WITHIN.total_seconds()},
                {"type": "string", "format": "duration"},
            ],
            "description": "Seconds, or an ISO 8601 duration; answered in seconds",
        }
    ),
]
MAX_FOLLOWER_DEPTH = 20
NEVER_EVALUATED = frozenset({"prefect.log.write"})
TRIGGER_TYPES = ("event", "compound", "sequence")

Patterns = str | list[str]
ResourceSpec = dict[str, Patterns]


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(default_factory=uuid.uuid4)

    def all_triggers(self) -> list[AnyTrigger]:
        return [self]  # type: ignore[list-item]

    def reset_ids(self) -> None:
        """Give this trigger and every nested one a new id (the API regenerates them)."""
        for trigger in self.all_triggers():
            trigger.id = uuid.uuid4()

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {"type": data.pop("type"), **data}


def unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class EventTrigger(_Trigger):
    """Fire on the presence (Reactive) or absence (Proactive) of matching events."""

    type: Literal["event"] = "event"
    match: ResourceSpec = Field(default_factory=dict)
    match_related: ResourceSpec | list[ResourceSpec] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    for_each: list[str] = Field(default_factory=list)
    posture: Literal["Reactive", "Proactive"]
    threshold: int = Field(default=1, ge=1, le=MAX_CLIENT_INT)
    within: Window = Field(default=timedelta(0), validate_default=True)
    # (expect|after, event name) → matches: event names repeat, globbing them again is waste
    _names: dict = PrivateAttr(default_factory=dict)
    # (sorted for_each, whether all are labels of the primary resource): `bucketing_key`'s plan
    _key_plan: tuple | None = PrivateAttr(default=None)

    @field_validator("after", "expect", "for_each")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return unique(value)

    @field_validator("within", mode="before")
    @classmethod
    def _within_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("`within` must be a number of seconds or a duration, not null")
        return value

    @field_validator("within")
    @classmethod
    def _proactive_minimum(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value < timedelta(0):
            raise ValueError("`within` must not be negative")
        if info.data.get("posture") == "Proactive":
            if value == timedelta(0):
                return PROACTIVE_MINIMUM_WITHIN
            if value < PROACTIVE_MINIMUM_WITHIN:
                raise ValueError(
                    "`within` for Proactive triggers must be greater than or equal to 10 seconds"
                )
        return value

    @field_serializer("within")
    def _within_seconds(self, value: timedelta) -> float:
        return value.total_seconds()

    # --- semantics -----------------------------------------------------------------------------

    @property
    def reactive(self) -> bool:
        return self.posture == "Reactive"

    @property
    def immediate(self) -> bool:
        """A reactive trigger with no window counts every event at once."""
        return self.reactive and self.within == _NO_TIME

    @property
    def holds_expect_events(self) -> bool:
        return not self.reactive and bool(self.after)

    def related_specs(self) -> list[ResourceSpec]:
        if isinstance(self.match_related, list):
            return self.match_related
        return [self.match_related]

    def event_name_covered(self, name: str) -> bool:
        """Whether the name is one this trigger looks at (`expect` ∪ `after`; empty: any)."""
        if not self.expect:
            return bool(name)  # Prefect's pattern for "any event" is `.+`
        return any(glob_matches(p, name) for p in self.expect) or self.starts_after(name)

    def covers(self, event: Event) -> bool:
        return self.event_name_covered(event.event) and self.covers_resources(event)

    def covers_resources(self, event: Event) -> bool:
        if not self.match and not self.match_related:
            return True  # (without reading the labels: a stored event decodes them on use)
        if self.match and not labels_match(self.match, event.resource):
            return False
        for spec in self.related_specs():
            if spec and not any(labels_match(spec, r) for r in event.related):
                return False
        return True

    def starts_after(self, name: str) -> bool:
        # The private dict read directly: `self._names` goes through pydantic's __getattr__,
        # which was a tenth of a proactive replay (issue 12's preview profile).
        names = self.__pydantic_private__["_names"]
        found = names.get(("after", name))
        if found is None:
            found = names[("after", name)] = any(glob_matches(p, name) for p in self.after)
        return found

    def expects(self, name: str) -> bool:
        if not self.expect:
            return True
        names = self.__pydantic_private__["_names"]
        found = names.get(("expect", name))
        if found is None:
            found = names[("expect", name)] = any(glob_matches(p, name) for p in self.expect)
        return found

    def bucketing_key(self, event: Event) -> tuple[str, ...]:
        if not self.for_each:
            return ()
        plan = self.__pydantic_private__["_key_plan"]
        if plan is None:
            labels = tuple(sorted(self.for_each))
            plain = not any(_is_related_label(label) for label in labels)
            plan = self.__pydantic_private__["_key_plan"] = (labels, plain)
        labels, plain = plan
        if not plain:
            return tuple(find_resource_label(event, label) or "" for label in labels)
        # Labels of the primary resource only (the usual case): looked up directly, the
        # resource read once (a stored event decodes it on first use).
        resource = event.resource
        if len(labels) == 1:
            return (resource.get(labels[0]) or "",)
        return tuple(resource.get(label) or "" for label in labels)

    def labels_for(self, key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(sorted(self.for_each), key, strict=False))

    def meets_threshold(self, count: int) -> bool:
        if self.reactive:
            return count >= self.threshold
        return count < self.threshold


class _CompositeTrigger(_Trigger):
    triggers: list[AnyTrigger] = Field(min_length=1)
    within: Window | None = None

    @field_validator("within")
    @classmethod
    def _within_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("`within` must not be negative")
        return value

    @field_serializer("within")
    def _within_seconds(self, value: timedelta | None) -> float | None:
        return None if value is None else value.total_seconds()

    def all_triggers(self) -> list[AnyTrigger]:
        return [self, *(t for child in self.triggers for t in child.all_triggers())]  # type: ignore[list-item]

    @property
    def num_expected_firings(self) -> int:
        return len(self.triggers)

    def ready_to_fire(self, firings: list[Firing]) -> bool:
        raise NotImplementedError


class CompoundTrigger(_CompositeTrigger):
    """Fire when `require` (any, all or N) of the child triggers have fired."""

    type: Literal["compound"] = "compound"
    # Bounded by the number of children (`_require_in_range`), which the schema cannot say.
    require: Annotated[
        int | Literal["any", "all"],
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": MAX_CLIENT_INT},
                    {"enum": ["any", "all"], "type": "string"},
                ],
                "description": "How many of the triggers must fire: a number, any or all",
            }
        ),
    ]

    @field_validator("require")
    @classmethod
    def _require_in_range(cls, value: int | str, info: ValidationInfo) -> int | str:
        if isinstance(value, int):
            children = info.data.get("triggers")
            if value < 1:
                raise ValueError("`require` must be at least 1")
            if children is not None and value > len(children):
                raise ValueError(
                    f"`require` must be at most the number of triggers ({len(children)})"
                )
        return value

    @property
    def num_expected_firings(self) -> int:
        if self.require == "any":
            return 1
        if self.require == "all":
            return len(self.triggers)
        return int(self.require)

    def ready_to_fire(self, firings: list[Firing]) -> bool:
        return len(firings) >= self.num_expected_firings


class SequenceTrigger(_CompositeTrigger):
    """Fire when every child trigger has fired, in the listed order."""

    type: Literal["sequence"] = "sequence"

    def ready_to_fire(self, firings: list[Firing]) -> bool:
        actual = [f.trigger.id for f in sorted(firings, key=lambda f: f.triggered)]
        return actual == [t.id for t in self.triggers]


def _trigger_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("type")
    return getattr(value, "type", None)


AnyTrigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[CompoundTrigger, Tag("compound")]
    | Annotated[SequenceTrigger, Tag("sequence")],
    Discriminator(
        _trigger_tag,
        custom_error_type="invalid_trigger_type",
        custom_error_message=(
            "`type` must be one of event, compound, sequence "
            "(metric triggers are a Prefect Cloud feature)"
        ),
    ),
]
_CompositeTrigger.model_rebuild()
CompoundTrigger.model_rebuild()
SequenceTrigger.model_rebuild()


class _TriggerDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trigger: AnyTrigger


def parse_trigger(data: Any) -> EventTrigger | CompoundTrigger | SequenceTrigger:
    """Validate trigger JSON; raise `TriggerInvalid` with field-level errors (`trigger.…`)."""
    if not isinstance(data, dict):
        raise TriggerInvalid([{"field": "trigger", "message": "must be a JSON object"}])
    try:
        return _TriggerDocument.model_validate({"trigger": data}).trigger
    except ValidationError as exc:
        raise TriggerInvalid(validation_errors(exc)) from None


class TriggerInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def validation_errors(exc: ValidationError, *, prefix: tuple = ()) -> list[dict[str, str]]:
    """Field-level messages from a pydantic error, without the union tags in the paths.

    A discriminated union puts the tag (`event`, `compound`, …) into each location; the user
    wrote `trigger.within`, not `trigger.event.within`.
    """
    out = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        cleaned: list[str] = []
        for i, part in enumerate(loc):
            previous = loc[i - 1] if i else None
            if part in TRIGGER_TYPES and (previous == "trigger" or isinstance(previous, int)):
                continue
            cleaned.append(str(part))
        if prefix:
            cleaned = [*map(str, prefix), *cleaned]
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append({"field": ".".join(cleaned) or "trigger", "message": message})
    return out


def _is_related_label(label: str) -> bool:
    """Whether `find_resource_label` reads this label from a related resource."""
    directive, _, _ = label.rpartition(":")
    return directive.partition(":")[0] == "related"


def find_resource_label(event: Event, label: str) -> str | None:
    """A label of the primary resource, or `related:<role>:<label>` of the first in that role."""
    directive, _, related_label = label.rpartition(":")
    directive, _, role = directive.partition(":")
    if directive == "related":
        for related in event.related:
            if related.get("prefect.resource.role") == role:
                return related.get(related_label)
        return None
    return event.resource.get(label)
