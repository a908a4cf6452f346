"""The shapes of the events API's bodies, for its OpenAPI description only.

Events themselves are validated by the plain-Python contract (`events.schema`, fast on the
ingest path), and responses are built as plain dicts; these pydantic models say what those are,
so drf-spectacular can describe every operation's request and response. Request models that do
validate input live next to their views.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, RootModel

Labels = dict[str, str]


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the field, e.g. `filter.event.prefix`")
    message: str
    index: int | None = Field(default=None, description="The event's index in a batch")


class PrefectProblem(BaseModel):
    loc: list[str | int] = Field(description='Where, e.g. `["body", "actions", 0, "url"]`')
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx answer: what went wrong, and (when it is about the body) where; with Prefect's
    keys as well, for Prefect's client and scripts written for it."""

    detail: str
    errors: list[FieldProblem] | None = None
    exception_message: str = Field(description="Prefect's key: the same as `detail`")
    exception_detail: list[PrefectProblem] | None = Field(
        default=None, description="Prefect's key (422): each problem, pydantic-style"
    )
    request_body: Any = Field(
        default=None, description="Prefect's key (422): the body sent, credentials redacted"
    )


class Event(BaseModel):
    """An event as a client sends it (Prefect's `Event`)."""

    occurred: datetime
    event: str = Field(description="The event's name, e.g. `acme.order.shipped`")
    resource: Labels = Field(description="Labels; `prefect.resource.id` is required")
    related: list[Labels] = Field(
        default_factory=list, description="Related resources, each with `prefect.resource.role`"
    )
    payload: dict[str, Any] = Field(default_factory=dict)
    id: uuid.UUID
    follows: uuid.UUID | None = None


class EventBatch(RootModel[list[Event]]):
    pass


class ReceivedEvent(Event):
    """A stored event (Prefect's `ReceivedEvent`): the event plus when eventsite received it."""

    received: datetime


class EventPage(BaseModel):
    events: list[ReceivedEvent]
    total: int = Field(description="How many events match the filter")
    next_page: str | None = Field(
        description="Absolute URL of the next page (from EVENTSITE_PUBLIC_URL), or null"
    )
    total_is_estimate: bool = Field(
        default=False,
        description="An eventsite extension: `total` is an estimate, because counting every "
        "match exactly would have been slow (a filter matching a large share of a large log)",
    )


class EventCount(BaseModel):
    value: str
    label: str
    count: int
    start_time: datetime
    end_time: datetime


class EventCounts(RootModel[list[EventCount]]):
    pass
