"""The action kinds: do-nothing, call-webhook-url, send-email, emit-event, pause/resume.

The notification presets (Slack, Teams, PagerDuty, Discord) are in `presets`."""

from __future__ import annotations

import json
import logging
import smtplib
import uuid
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from automations import changes
from automations.actions import outbound
from automations.actions.base import (
    FOLLOWS_WINDOW,
    RESULT_BODY_LIMIT,
    Action,
    ActionFailed,
    ActionRetry,
    Outcome,
    RunContext,
)
from automations.actions.context import maybe_template, render, render_structure, templates_in
from automations.actions.deliveries import Exchange, excerpt
from automations.actions.links import event_link
from automations.models import Automation
from automations.triggers import EventTrigger, TriggerInvalid, parse_trigger
from events import schema
from events.ingest import internal_event, store
from events.schema import Event, EventInvalid
from eventsite.field_secrets import REDACTED

logger = logging.getLogger(__name__)


class DoNothing(Action):
    type: Literal["do-nothing"] = "do-nothing"
    label: ClassVar[str] = "Do nothing"

    def execute(self, ctx: RunContext) -> Outcome:
        logger.info("automation %s: do-nothing", ctx.automation.id)
        return Outcome()


class CallWebhook(Action):
    """Call a URL (eventsite's own kind: Prefect's call-webhook needs a webhook block).

    Stored as `call-webhook-url` so that Prefect's client, which knows `call-webhook` only with
    a `block_document_id`, reads it as an unknown action; `{"type": "call-webhook", "url": …}`
    is still accepted on input (`registry.parse_action`). Header values are secret.
    """

    type: Literal["call-webhook-url"] = "call-webhook-url"
    label: ClassVar[str] = "Call a webhook"
    secret_fields: ClassVar[tuple[str, ...]] = ("headers",)
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    payload: str = ""
    timeout: float = Field(default=10.0, gt=0, le=60)

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_string(cls, value: Any) -> Any:
        # Like Prefect: a legacy object payload becomes indented JSON text.
        if value is None:
            return ""
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if maybe_template(value):
            return value
        return check_http_url(value)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def templates(self) -> dict[str, str]:
        return {"url": self.url, "payload": self.payload}

    def describe(self) -> str:
        return f"{self.method} {outbound.origin(self.url)}"

    def execute(self, ctx: RunContext) -> Outcome:
        url = render(self.url, ctx.template)
        body = render(self.payload, ctx.template)
        related = [
            {
                "prefect.resource.id": "prefect.block-type.webhook",
                "prefect.resource.role": "block-type",
            },
            {
                "prefect.resource.id": f"eventsite.webhook-target.{outbound.origin(url)}",
                "prefect.resource.role": "target",
            },
        ]
        content_type = None
        if body and not any(k.lower() == "content-type" for k in self.headers):
            content_type = "application/json" if body.lstrip()[:1] in ("{", "[") else "text/plain"
        return http_call(
            self.method,
            url,
            shown_url=_without_credentials(url),
            headers=self.headers,
            body=body,
            content_type=content_type,
            timeout=self.timeout,
            related=related,
            delivery=ctx.invocation,
            test=ctx.is_test,
            what="Webhook",
        )


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def http_call(
    method: str,
    url: str,
    *,
    shown_url: str,
    headers: dict[str, str],
    body: str,
    content_type: str | None,
    timeout: float,
    related: list[dict[str, str]],
    what: str,
    ok_statuses: tuple[int, ...] = (),
    delivery: uuid.UUID | None = None,
    test: bool = False,
) -> Outcome:
    """Send one request through `outbound` and report it (a retry for 5xx / 429 / network).

    Delivery is at least once: a call sent just before a crash, or whose answer was lost, is sent
    again. `delivery` (the action run's id, the same for every attempt) goes out as
    `Idempotency-Key` and `X-Eventsite-Delivery` so that the receiver can drop repeats."""
    sent_headers = {"user-agent": "eventsite-automations", **headers}
    if delivery is not None:
        sent_headers["idempotency-key"] = str(delivery)
        sent_headers["x-eventsite-delivery"] = str(delivery)
    if test:  # a "Send test": the receiver can tell it from a real alert
        sent_headers["x-eventsite-test"] = "true"
    if content_type:
        sent_headers["content-type"] = content_type
    exchange = Exchange(
        summary=f"{method} {shown_url}",
        request={
            "method": method,
            "url": shown_url,
            # Configured headers may be credentials: their names only.
            "headers": {k: (REDACTED if k in headers else v) for k, v in sent_headers.items()},
            "body": excerpt(body),
        },
    )
    try:
        reply = outbound.send(
            method,
            url,
            headers=sent_headers,
            content=body.encode() if body else None,
            timeout=timeout,
        )
    except outbound.Refused as exc:
        exchange.summary += " refused"
        raise ActionFailed(f"{what} call refused: {exc}", exchange=exchange) from exc
    except (outbound.Slow, outbound.CallTimedOut) as exc:
        exchange.summary += " timed out"
        raise ActionRetry(
            f"{what} call timed out after {timeout:g} s: {exc!r}", exchange=exchange
        ) from exc
    except outbound.CallFailed as exc:
        exchange.summary += " failed"
        raise ActionRetry(f"{what} call failed: {exc!r}", exchange=exchange) from exc
    text = reply.text
    exchange.summary = f"{method} {shown_url} → {reply.status_code}"
    exchange.response = {
        "status_code": reply.status_code,
        "headers": reply.safe_headers(),
        "body": excerpt(text),
        "truncated": reply.truncated,
        "redirects": reply.redirects,
    }
    details = {
        "status_code": reply.status_code,
        "response_body": text[:RESULT_BODY_LIMIT],
        "response_headers": reply.safe_headers(),
    }
    if reply.status_code in ok_statuses:
        return Outcome(details, related, exchange)
    if reply.status_code >= 500 or reply.status_code == 429:
        raise ActionRetry(
            f"{what} answered {reply.status_code}: {text[:200]}", details, exchange=exchange
        )
    if reply.status_code >= 400:
        raise ActionFailed(
            f"{what} answered {reply.status_code}: {text[:200]}", details, exchange=exchange
        )
    return Outcome(details, related, exchange)


class SendEmail(Action):
    """Send an email through Django's mail backend (eventsite's own kind, and the email preset).

    Stored as `send-email`; `{"type": "send-notification", "to": …}` is still accepted.
    """

    type: Literal["send-email"] = "send-email"
    label: ClassVar[str] = "Send an email"
    to: list[str] = Field(min_length=1)
    subject: str = "Prefect automated notification"
    body: str
    # Append a link to the event (or the automation) after the body; the email preset's form
    # turns it on.
    link: bool = False

    @field_validator("to")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                validate_email(address)
            except DjangoValidationError:
                raise ValueError(f"{address!r} is not an email address") from None
        return value

    def templates(self) -> dict[str, str]:
        return {"subject": self.subject, "body": self.body}

    def describe(self) -> str:
        return "email " + ", ".join(self.to)

    def execute(self, ctx: RunContext) -> Outcome:
        subject = render(self.subject, ctx.template).replace("\n", " ").strip()
        body = render(self.body, ctx.template)
        if self.link:
            text, url = event_link(ctx)
            body = f"{body.rstrip()}\n\n{text}: {url}\n"
        exchange = Exchange(
            summary=f"mail to {', '.join(self.to)}: {subject}"[:300],
            request={
                "from": settings.DEFAULT_FROM_EMAIL,
                "to": list(self.to),
                "subject": subject,
                "body": excerpt(body),
            },
        )
        try:
            sent = send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(self.to))
        except (OSError, smtplib.SMTPException) as exc:
            exchange.summary += " (not sent)"
            raise ActionRetry(f"Notification failed: {exc!r}", exchange=exchange) from exc
        exchange.response = {"sent": sent}
        return Outcome(
            {"recipients": list(self.to), "subject": subject, "sent": sent}, exchange=exchange
        )


class EmitEvent(Action):
    type: Literal["emit-event"] = "emit-event"
    label: ClassVar[str] = "Emit an event"
    event: dict[str, Any]

    @field_validator("event")
    @classmethod
    def _event_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("event"), str) or not value["event"]:
            raise ValueError("needs an `event` name")
        resource = value.get("resource")
        if not isinstance(resource, dict) or not resource.get(schema.RESOURCE_ID):
            raise ValueError("needs a `resource` with a `prefect.resource.id`")
        unknown = set(value) - {"event", "resource", "related", "payload"}
        if unknown:
            raise ValueError(
                f"unknown keys {sorted(unknown)}; use event, resource, related, payload"
            )
        if not templates_in(value):
            # Nothing to render: it must already be a valid event.
            _build_event(value, follows=None)
        return value

    def templates(self) -> dict[str, str]:
        return {f"event[{i}]": t for i, t in enumerate(templates_in(self.event))}

    def describe(self) -> str:
        return f"emit {self.event.get('event')}"

    def execute(self, ctx: RunContext) -> Outcome:
        rendered = render_structure(self.event, ctx.template)
        follows = None
        if (
            ctx.triggering_event
            and abs(ctx.triggered - ctx.triggering_event.occurred) < FOLLOWS_WINDOW
        ):
            follows = ctx.triggering_event.id
        try:
            event = _build_event(rendered, follows=follows)
        except ValueError as exc:
            raise ActionFailed(f"The rendered event is invalid: {exc}") from exc
        _refuse_a_loop(ctx.automation, event)
        store([event], source="automations")
        return Outcome(
            {"emitted_event_id": str(event.id), "emitted_event": event.event},
            [
                {
                    "prefect.resource.id": f"prefect.event.{event.id}",
                    "prefect.resource.role": "emitted-event",
                }
            ],
        )


def _refuse_a_loop(automation: Automation | None, event: Event) -> None:
    """A templated name is known only now: an event this automation would react to itself is
    not emitted (the static case is refused when the automation is saved)."""
    if automation is None or getattr(automation, "allow_self_trigger", False):
        return
    try:
        trigger = parse_trigger(automation.trigger)
    except TriggerInvalid:
        return
    for child in trigger.all_triggers():
        if isinstance(child, EventTrigger) and child.covers(event):
            raise ActionFailed(
                f"The emitted event {event.event!r} would trigger this automation again and "
                "loop; it was not emitted (narrow the trigger, or set allow_self_trigger)."
            )


def _build_event(data: dict[str, Any], *, follows: uuid.UUID | None) -> Event:
    try:
        return internal_event(
            data.get("event"),
            resource=data.get("resource"),
            related=data.get("related") or [],
            payload=data.get("payload") or {},
            follows=follows,
            allow_reserved=False,  # a person chose the name: no audit or eventsite.* event
        )
    except EventInvalid as exc:
        raise ValueError(str(exc)) from None


class AutomationCommand(Action):
    source: Literal["selected", "inferred"] = "selected"
    automation_id: uuid.UUID | None = None
    enable: ClassVar[bool]

    @model_validator(mode="after")
    def _selected_needs_id(self):
        if (self.source == "selected") != bool(self.automation_id):
            raise ValueError(
                "automation_id is "
                + ("not allowed with source 'inferred'" if self.automation_id else "required")
            )
        return self

    def describe(self) -> str:
        target = str(self.automation_id) if self.automation_id else "the inferred automation"
        return f"{self.label.lower()} {target}"

    def execute(self, ctx: RunContext) -> Outcome:
        target_id = self.automation_id
        if self.source == "inferred":
            target_id = _inferred_automation(ctx.triggering_event)
        related = [
            {
                "prefect.resource.id": f"prefect.automation.{target_id}",
                "prefect.resource.role": "target",
            }
        ]
        target = Automation.objects.filter(pk=target_id).first()
        if target is None:
            raise ActionFailed(f"Automation {target_id} not found", {"status_code": 404})
        changes.set_enabled(target, self.enable)
        return Outcome({"status_code": 204}, related)


def _inferred_automation(event: Event | None) -> uuid.UUID:
    if event is None:
        raise ActionFailed("No event to infer the automation")
    for resource in (event.resource, *event.related):
        rid = resource.get(schema.RESOURCE_ID, "")
        if rid.startswith("prefect.automation."):
            try:
                return uuid.UUID(rid.removeprefix("prefect.automation."))
            except ValueError:
                continue
    raise ActionFailed("No automation could be inferred")


class PauseAutomation(AutomationCommand):
    type: Literal["pause-automation"] = "pause-automation"
    label: ClassVar[str] = "Pause automation"
    enable: ClassVar[bool] = False


class ResumeAutomation(AutomationCommand):
    type: Literal["resume-automation"] = "resume-automation"
    label: ClassVar[str] = "Resume automation"
    enable: ClassVar[bool] = True
