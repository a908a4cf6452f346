"""The shapes of the automations API's bodies, for its OpenAPI description only.

An automation is validated by `automations.validation` (triggers by `automations.triggers`,
actions by the `ACTIONS` registry), in steps that give field-level errors; these models put the
same pieces together so drf-spectacular can describe the requests and responses. The action
union is built from the registry, so a new action kind is described as soon as it is registered.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Union

from pydantic import BaseModel, Field, RootModel

from automations.actions import ACTIONS
from automations.triggers.definitions import AnyTrigger
from automations.validation import AutomationBody

AnyAction = Annotated[Union[tuple(ACTIONS.values())], Field(discriminator="type")]  # noqa: UP007


class AutomationIn(AutomationBody):
    """Prefect's AutomationCreate / AutomationUpdate."""

    trigger: AnyTrigger
    actions: list[AnyAction]
    actions_on_trigger: list[AnyAction] = Field(default_factory=list)
    actions_on_resolve: list[AnyAction] = Field(default_factory=list)


class Automation(BaseModel):
    """Prefect's Automation (the response leaves out `owner_resource`, like Prefect's)."""

    id: uuid.UUID
    name: str
    description: str
    enabled: bool
    tags: list[str]
    trigger: AnyTrigger
    actions: list[AnyAction]
    actions_on_trigger: list[AnyAction]
    actions_on_resolve: list[AnyAction]
    created: datetime
    updated: datetime


class AutomationList(RootModel[list[Automation]]):
    pass


class ExplainFiring(BaseModel):
    id: uuid.UUID
    triggered: datetime


class ExplainClause(BaseModel):
    clause: str
    passed: bool | None = Field(description="null: informational, not a condition")
    expected: str
    actual: str
    note: str


class ExplainWindow(BaseModel):
    start: datetime
    end: datetime
    count: int


class ExplainEventTrigger(BaseModel):
    trigger: str = Field(description='its path in the trigger: "" (the top), "triggers[0]" …')
    key: list[str] = Field(description="the for_each key of the event")
    posture: str
    threshold: int
    within: float
    before: ExplainWindow | None = Field(description="the window just before the event")
    after: ExplainWindow | None = Field(description="the window just after it")
    debounced_until: datetime | None = Field(description="set: the event fell in a debounce")
    reason: str


class ExplainChild(BaseModel):
    trigger: str
    fired: datetime | None = Field(description="when it last fired within the composite's window")


class ExplainComposite(BaseModel):
    trigger: str
    type: str
    require: str
    children: list[ExplainChild]
    reason: str


class ExplainAtEvent(BaseModel):
    """The trigger state at the event's time, replayed from the stored log."""

    replayed: bool = Field(description="false: the replay did not evaluate the event")
    reason: str
    fired: bool
    windows: list[ExplainEventTrigger]
    composites: list[ExplainComposite]
    reasons: list[str]


class Explanation(BaseModel):
    """Why an automation did or did not fire for one stored event."""

    automation: uuid.UUID
    event: uuid.UUID
    enabled: bool = Field(description="whether it was enabled when the event arrived")
    matched: bool
    evaluated: bool
    fired: bool
    firings: list[ExplainFiring]
    verdict: str
    clauses: list[ExplainClause]
    at_event: ExplainAtEvent


class PreviewBody(BaseModel):
    """What to replay: a trigger as in an automation, over [since, until] (until: now)."""

    trigger: AnyTrigger
    since: datetime
    until: datetime | None = None


class PreviewFiring(BaseModel):
    occurred: datetime = Field(description="when the engine would have fired")
    triggering_labels: dict[str, str]
    triggering_event: uuid.UUID | None = Field(description="null: fired on absence")


class Preview(BaseModel):
    """The firings, in order; `since` is clipped to where the stored log begins (`horizon`)."""

    firings: list[PreviewFiring]
    count: int
    resolved: list[PreviewFiring] = Field(
        description="proactive outages that ended: `occurred` is the resolution, "
        "`triggering_event` the expected event that came back"
    )
    since: datetime
    until: datetime
    horizon: datetime | None
    events: int = Field(description="stored events replayed")
    truncated: bool = Field(description="the read stopped early; `until` is the last event read")
