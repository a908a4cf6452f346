"""What every action kind is: `Action`, the context it runs in, what it reports, how it fails."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
)

from events.schema import Event

RESULT_BODY_LIMIT = 1000
# A failed action event must not fail for being too big, so error texts are bounded too.
ERROR_LIMIT = 2000
FOLLOWS_WINDOW = timedelta(minutes=5)
SENSITIVE_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")


class ActionFailed(Exception):
    """The action cannot succeed as configured (not retried)."""

    def __init__(self, reason: str, details: dict[str, Any] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}


class ActionRetry(ActionFailed):
    """A transient failure (network, 5xx, SMTP): tried again later with backoff."""


@dataclass
class Outcome:
    """What an action reports: result details for the events and related resources."""

    details: dict[str, Any] = field(default_factory=dict)
    related: list[dict[str, str]] = field(default_factory=list)


@dataclass
class RunContext:
    """Everything an action may need while it runs."""

    automation: Any  # automations.models.Automation
    template: dict[str, Any]
    triggering_event: Event | None
    triggered: datetime
    invocation: uuid.UUID


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    label: ClassVar[str] = ""

    def templates(self) -> dict[str, str]:
        """Template fields by name, validated when the automation is saved."""
        return {}

    def run(self, ctx: RunContext) -> Outcome:
        raise NotImplementedError

    def summary(self) -> str:
        return self.label
