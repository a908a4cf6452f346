"""What every action kind is: `Action`, the context it runs in, what it reports, how it fails.

Secret settings: a kind names its credentials in `secret_fields` (a string, or a dict whose
values are secret, like call-webhook's `headers`). They are sealed at rest
(`eventsite.field_secrets`): `stored()` gives the definition to store, and validating a stored
definition opens them again for `run`. Clients never see them (the stored JSON is redacted on
the way out) and may send `REDACTED` back to keep a stored value (`keep_secrets`). Whatever
an action reports, its outcome, its failure and its delivery record, is scrubbed of the clear
values before it is stored or emitted.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.utils import timezone
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from automations.actions import deliveries
from automations.actions.deliveries import Exchange
from automations.models import Delivery
from events.schema import Event
from eventsite import field_secrets
from eventsite.field_secrets import REDACTED

logger = logging.getLogger(__name__)

RESULT_BODY_LIMIT = 1000
# A failed action event must not fail for being too big, so error texts are bounded too.
ERROR_LIMIT = 2000
FOLLOWS_WINDOW = timedelta(minutes=5)
SENSITIVE_HEADERS = ("authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key")


class ActionFailed(Exception):
    """The action cannot succeed as configured (not retried)."""

    def __init__(
        self,
        reason: str,
        details: dict[str, Any] | None = None,
        *,
        exchange: Exchange | None = None,
    ):
        super().__init__(reason)
        self.reason = reason
        self.details = details or {}
        self.exchange = exchange


class ActionRetry(ActionFailed):
    """A transient failure (network, 5xx, SMTP): tried again later with backoff."""


@dataclass
class Outcome:
    """What an action reports: result details for the events and related resources."""

    details: dict[str, Any] = field(default_factory=dict)
    related: list[dict[str, str]] = field(default_factory=list)
    exchange: Exchange | None = None


@dataclass
class RunContext:
    """Everything an action may need while it runs."""

    automation: Any  # automations.models.Automation
    template: dict[str, Any]
    triggering_event: Event | None
    triggered: datetime
    invocation: uuid.UUID
    is_test: bool = False  # "Send test": outbound calls say so (`X-Eventsite-Test: true`)


class SecretMissing(ValueError):
    """`REDACTED` was sent for a secret that has no stored value to keep."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(
            f"is write-only and has no stored value to keep: give the value itself "
            f"({REDACTED} keeps a stored value only when editing the same action)"
        )


def _setting_seconds(name: str) -> float:
    return getattr(settings, name).total_seconds()


class RetrySchedule(BaseModel):
    """When a transiently failing action is tried again: exponential backoff with jitter.

    The wait after failed attempt n is `first_delay · 2^(n-1)`, capped at `max_delay`, then
    multiplied by a random factor in [1 - jitter, 1 + jitter] so that many runs failing at
    once do not all come back at once. The defaults (settings `EVENTSITE_ACTION_MAX_ATTEMPTS`,
    `EVENTSITE_ACTION_RETRY_BASE`, `EVENTSITE_ACTION_RETRY_CAP`: 10 attempts, 10 s … 30 min)
    span about 72 minutes, so a receiver that is down for an hour still gets the alert. A retry
    is a pending `ActionRun` row with its `next_attempt`: it survives a restart of `serve`.
    """

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(
        default_factory=lambda: settings.EVENTSITE_ACTION_MAX_ATTEMPTS,
        ge=1,
        le=30,
        description="Attempts in all, the first one included.",
    )
    first_delay: float = Field(
        default_factory=lambda: _setting_seconds("EVENTSITE_ACTION_RETRY_BASE"),
        ge=1,
        le=86_400,
        description="Seconds to wait after the first failed attempt.",
    )
    max_delay: float = Field(
        default_factory=lambda: _setting_seconds("EVENTSITE_ACTION_RETRY_CAP"),
        ge=1,
        le=86_400,
        description="The longest wait between two attempts, in seconds.",
    )
    jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="Each wait varies randomly by this fraction."
    )

    def nominal(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), before jitter."""
        return min(self.first_delay * 2 ** min(attempt - 1, 40), self.max_delay)

    def delay(self, attempt: int) -> timedelta:
        factor = random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 (not security)
        return timedelta(seconds=self.nominal(attempt) * factor)

    def span(self) -> timedelta:
        """From the first attempt to the last, before jitter."""
        return timedelta(seconds=sum(self.nominal(n) for n in range(1, self.attempts)))


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    # How a transient failure is retried; None: the default schedule (`RetrySchedule()`).
    retry: RetrySchedule | None = None
    label: ClassVar[str] = ""
    # Settings that are credentials: sealed at rest, never shown (see the module docstring).
    secret_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _open_sealed(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls.secret_fields:
            data = dict(data)
            for name in cls.secret_fields:
                value = data.get(name)
                if isinstance(value, dict):
                    data[name] = {k: field_secrets.reveal(v) for k, v in value.items()}
                elif value is not None:
                    data[name] = field_secrets.reveal(value)
        return data

    # --- secrets ---------------------------------------------------------------------------

    @classmethod
    def keep_secrets(cls, data: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
        """`data` with every `REDACTED` secret replaced by the stored value it stands for.

        `previous` is the stored definition this one replaces (same type), or None. Raises
        `SecretMissing` naming the field when there is nothing to keep.
        """
        data = dict(data)
        if previous is not None and previous.get("type") != data.get("type"):
            previous = None
        for name in cls.secret_fields:
            value = data.get(name)
            old = (previous or {}).get(name)
            if isinstance(value, dict):
                old_by_name = {str(k).lower(): v for k, v in (old or {}).items()} if old else {}
                kept = {}
                for key, item in value.items():
                    if item == REDACTED:
                        if str(key).lower() not in old_by_name:
                            raise SecretMissing(f"{name}.{key}")
                        item = old_by_name[str(key).lower()]
                    kept[key] = item
                data[name] = kept
            elif value == REDACTED:
                if old in (None, "", {}):
                    raise SecretMissing(name)
                data[name] = old
        return data

    def secret_values(self) -> list[str]:
        """The clear values of this action's secrets (to scrub them from what it reports)."""
        values = []
        for name in self.secret_fields:
            value = getattr(self, name, None)
            if isinstance(value, dict):
                values += [str(v) for v in value.values()]
            elif value:
                values.append(str(value))
        return values

    def stored(self, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """The definition to store: JSON with the secrets sealed.

        A secret equal to the one in `previous` keeps its sealed text, so that saving an
        unchanged action stores the same JSON.
        """
        data = self.model_dump(mode="json")
        if data.get("retry") is None:
            data.pop("retry", None)  # the default: stored (and shown to Prefect) as before
        if previous is not None and previous.get("type") != data.get("type"):
            previous = None
        for name in self.secret_fields:
            value = data.get(name)
            old = (previous or {}).get(name)
            if isinstance(value, dict):
                old = old if isinstance(old, dict) else {}
                data[name] = {k: _sealed(v, old.get(k)) for k, v in value.items()}
            elif value:
                data[name] = _sealed(value, old)
        return data

    # --- running -----------------------------------------------------------------------------

    def schedule(self) -> RetrySchedule:
        return self.retry or RetrySchedule()

    def templates(self) -> dict[str, str]:
        """Template fields by name, validated when the automation is saved."""
        return {}

    def run(self, ctx: RunContext) -> Outcome:
        """Perform the action once (`execute`), record the attempt, and report without secrets."""
        started = timezone.now()
        secrets = self.secret_values()
        try:
            outcome = self.execute(ctx)
        except ActionFailed as exc:
            exc.reason = field_secrets.scrub(exc.reason, secrets)
            exc.details = field_secrets.scrub_all(exc.details, secrets)
            exc.args = (exc.reason,)
            self._record(ctx, started, exc.exchange, secrets, error=exc.reason, retry=exc)
            raise
        except Exception as exc:  # a bug in an action: its message may quote a secret
            logger.exception("action %s crashed", self.type)
            reason = field_secrets.scrub(f"Action crashed: {exc!r}", secrets)
            self._record(ctx, started, None, secrets, error=reason, retry=None)
            raise ActionFailed(reason) from None
        outcome.details = field_secrets.scrub_all(outcome.details, secrets)
        outcome.related = field_secrets.scrub_all(outcome.related, secrets)
        self._record(ctx, started, outcome.exchange, secrets)
        return outcome

    def execute(self, ctx: RunContext) -> Outcome:
        raise NotImplementedError

    def _record(self, ctx, started, exchange, secrets, *, error: str = "", retry=None) -> None:
        if error:
            outcome = (
                Delivery.Outcome.RETRYING
                if isinstance(retry, ActionRetry)
                else Delivery.Outcome.FAILED
            )
        else:
            outcome = Delivery.Outcome.SUCCEEDED
        if exchange is not None:
            exchange = Exchange(
                summary=field_secrets.scrub(exchange.summary, secrets),
                request=field_secrets.scrub_all(exchange.request, secrets),
                response=field_secrets.scrub_all(exchange.response, secrets),
            )
        deliveries.record(
            invocation=ctx.invocation,
            kind=self.type,
            started=started,
            outcome=outcome,
            exchange=exchange,
            error=error,
            max_attempts=self.schedule().attempts,
        )

    def describe(self) -> str:
        return self.label


def _sealed(value: Any, previous: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if field_secrets.is_sealed(previous):
        try:
            if field_secrets.reveal(previous) == value:
                return previous
        except field_secrets.SecretUnreadable:
            pass
    return field_secrets.seal(value)
