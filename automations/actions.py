"""What an automation does when it fires: a registry of action kinds, their templates, and the
one function that performs an action run (recording every attempt and emitting its events).

Templates render in Jinja2's immutable sandbox with Prefect's context (reference §5.6), so
templates written for Prefect work here: `{{ event.resource.name }}`, `{{ event.payload.x }}`,
`{{ automation.name }}`, `{{ event|tojson }}`, `{{ labels.prefect.resource.id }}`.
"""

from __future__ import annotations

import json
import logging
import smtplib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from jinja2 import ChainableUndefined, nodes, pass_eval_context
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import htmlsafe_json_dumps
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from events import schema
from events.ingest import emit
from events.schema import Event, EventInvalid, Limits

logger = logging.getLogger(__name__)

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


# --- templating ----------------------------------------------------------------------------------

MAX_TEMPLATE_RANGE = 100
MAX_LOOP_COUNT = 10
MAX_NESTED_LOOP_DEPTH = 2


def _limited_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_TEMPLATE_RANGE:
        raise OverflowError(
            f"Range too big. The sandbox blocks ranges larger than {MAX_TEMPLATE_RANGE}."
        )
    return rng


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return schema.isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, LabelDiver):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@pass_eval_context
def _tojson(eval_ctx, value: Any, indent: int | None = None):
    return htmlsafe_json_dumps(
        value, dumps=json.dumps, default=_json_default, indent=indent, sort_keys=False
    )


class _Environment(ImmutableSandboxedEnvironment):
    def __init__(self) -> None:
        super().__init__(
            undefined=ChainableUndefined,
            autoescape=False,
            extensions=["jinja2_humanize_extension.HumanizeExtension"],
        )
        self.globals["range"] = _limited_range
        self.filters["tojson"] = _tojson


ENVIRONMENT = _Environment()


def maybe_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def validate_template(text: str) -> None:
    """Check syntax and the loop limits; raise ValueError with the reason."""
    if not maybe_template(text):
        return
    try:
        root = ENVIRONMENT.parse(text)
    except TemplateError as exc:
        raise ValueError(f"is not a valid template: {exc}") from None
    loops = list(root.find_all(nodes.For))
    if len(loops) > MAX_LOOP_COUNT:
        raise ValueError(
            f"is not a valid template: contains {len(loops)} for loops; "
            f"at most {MAX_LOOP_COUNT} are allowed"
        )
    depth = max((_loop_depth(loop) for loop in loops), default=0)
    if depth > MAX_NESTED_LOOP_DEPTH:
        raise ValueError(
            f"is not a valid template: nests for loops {depth} deep; "
            f"at most {MAX_NESTED_LOOP_DEPTH} are allowed"
        )


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    if isinstance(node, nodes.For):
        depth += 1
    children = list(node.iter_child_nodes())
    return max((_loop_depth(child, depth) for child in children), default=depth)


def render(text: str, context: dict[str, Any]) -> str:
    """Render a user template; a failure is an `ActionFailed` carrying Prefect's details."""
    if not maybe_template(text):
        return text
    try:
        return ENVIRONMENT.from_string(text).render(context)
    except Exception as exc:  # any failure inside a user's template is the action's failure
        raise ActionFailed(
            f"Template rendering failed: {exc!r}"[:ERROR_LIMIT],
            {
                "template_error": f"Failed to render template: {exc!r}"[:ERROR_LIMIT],
                "template_source": text,
            },
        ) from exc


def _render_structure(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside a JSON structure (keys stay as written)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: _render_structure(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_structure(v, context) for v in value]
    return value


def _templates_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if maybe_template(value) else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _templates_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in _templates_in(v)]
    return []


class TemplateResource(dict):
    """A resource's labels, as Prefect's `Resource`: `.id`, `.name`, `.role`, `["label"]`."""

    @property
    def id(self) -> str:
        return self.get(schema.RESOURCE_ID, "")

    @property
    def name(self) -> str | None:
        return self.get("prefect.resource.name")

    @property
    def role(self) -> str | None:
        return self.get(schema.RESOURCE_ROLE)


class TemplateEvent(dict):
    """An event as templates see it: Prefect's ReceivedEvent fields, items or attributes."""

    @classmethod
    def of(cls, event: Event | None) -> TemplateEvent | None:
        if event is None:
            return None
        return cls(
            occurred=event.occurred,
            event=event.event,
            resource=TemplateResource(event.resource),
            related=[TemplateResource(r) for r in event.related],
            payload=event.payload,
            id=event.id,
            follows=event.follows,
            received=event.received,
        )

    def __str__(self) -> str:
        return json.dumps(self, default=_json_default)


class LabelDiver:
    """Dotted labels as nested attributes: `labels.prefect.resource.id` (Prefect's LabelDiver)."""

    def __init__(self, labels: dict[str, str], value: str = ""):
        self._labels = dict(labels)
        self._value = value
        nested: dict[str, dict[str, str]] = {}
        values: dict[str, str] = {}
        for key, label in labels.items():
            head, _, tail = key.partition(".")
            if tail:
                nested.setdefault(head, {})[tail] = label
            else:
                values[head] = label
        self._divers = {k: LabelDiver(v, values.pop(k, "")) for k, v in nested.items()}
        self._divers.update({k: LabelDiver({}, v) for k, v in values.items()})

    def __str__(self) -> str:
        return self._value or ""

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self):
        return iter(self._labels.items())

    def keys(self):
        return self._labels.keys()

    def __getitem__(self, key: str) -> str:
        return self._labels[key]

    def __getattr__(self, name: str) -> LabelDiver:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._divers[name]
        except KeyError:
            raise AttributeError(name) from None


def template_context(
    *,
    automation: dict[str, Any],
    event: Event | None,
    labels: dict[str, str],
    firing: dict[str, Any] | None,
    events: list[Event],
) -> dict[str, Any]:
    firings = _flatten_firings(firing) if firing else []
    return {
        "automation": automation,
        "event": TemplateEvent.of(event),
        "labels": LabelDiver(labels),
        "firing": firing,
        "firings": firings,
        "events": [TemplateEvent.of(e) for e in events],
    }


def _flatten_firings(firing: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        firing,
        *(f for child in firing.get("triggering_firings", []) for f in _flatten_firings(child)),
    ]


# --- action kinds --------------------------------------------------------------------------------


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


class DoNothing(Action):
    type: Literal["do-nothing"] = "do-nothing"
    label: ClassVar[str] = "Do nothing"

    def run(self, ctx: RunContext) -> Outcome:
        logger.info("automation %s: do-nothing", ctx.automation.id)
        return Outcome()


class CallWebhook(Action):
    type: Literal["call-webhook"] = "call-webhook"
    label: ClassVar[str] = "Call a webhook"
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
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def templates(self) -> dict[str, str]:
        return {"url": self.url, "payload": self.payload}

    def summary(self) -> str:
        return f"{self.method} {_origin(self.url)}"

    def run(self, ctx: RunContext) -> Outcome:
        url = render(self.url, ctx.template)
        body = render(self.payload, ctx.template)
        related = [
            {
                "prefect.resource.id": "prefect.block-type.webhook",
                "prefect.resource.role": "block-type",
            },
            {
                "prefect.resource.id": f"eventsite.webhook-target.{_origin(url)}",
                "prefect.resource.role": "target",
            },
        ]
        headers = {"user-agent": "eventsite-automations", **self.headers}
        if body and not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = (
                "application/json" if body.lstrip()[:1] in ("{", "[") else "text/plain"
            )
        try:
            response = _http_client().request(
                self.method,
                url,
                content=body.encode() if body else None,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.TimeoutException as exc:
            raise ActionRetry(f"Webhook call timed out after {self.timeout:g} s: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise ActionRetry(f"Webhook call failed: {exc!r}") from exc
        details = {
            "status_code": response.status_code,
            "response_body": response.text[:RESULT_BODY_LIMIT],
            "response_headers": {
                k: v for k, v in response.headers.items() if k.lower() not in SENSITIVE_HEADERS
            },
        }
        if response.status_code >= 500 or response.status_code == 429:
            raise ActionRetry(
                f"Webhook answered {response.status_code}: {response.text[:200]}", details
            )
        if response.status_code >= 400:
            raise ActionFailed(
                f"Webhook answered {response.status_code}: {response.text[:200]}", details
            )
        return Outcome(details, related)


class SendNotification(Action):
    type: Literal["send-notification"] = "send-notification"
    label: ClassVar[str] = "Send an email"
    to: list[str] = Field(min_length=1)
    subject: str = "Prefect automated notification"
    body: str

    @field_validator("to")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        from django.core.exceptions import ValidationError as DjangoValidationError
        from django.core.validators import validate_email

        for address in value:
            try:
                validate_email(address)
            except DjangoValidationError:
                raise ValueError(f"{address!r} is not an email address") from None
        return value

    def templates(self) -> dict[str, str]:
        return {"subject": self.subject, "body": self.body}

    def summary(self) -> str:
        return "email " + ", ".join(self.to)

    def run(self, ctx: RunContext) -> Outcome:
        subject = render(self.subject, ctx.template).replace("\n", " ").strip()
        body = render(self.body, ctx.template)
        try:
            sent = send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(self.to))
        except (OSError, smtplib.SMTPException) as exc:
            raise ActionRetry(f"Notification failed: {exc!r}") from exc
        return Outcome({"recipients": list(self.to), "subject": subject, "sent": sent})


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
        if not _templates_in(value):
            # Nothing to render: it must already be a valid event.
            _build_event(value, follows=None)
        return value

    def templates(self) -> dict[str, str]:
        return {f"event[{i}]": t for i, t in enumerate(_templates_in(self.event))}

    def summary(self) -> str:
        return f"emit {self.event.get('event')}"

    def run(self, ctx: RunContext) -> Outcome:
        rendered = _render_structure(self.event, ctx.template)
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
        emit(event, source="automations")
        return Outcome(
            {"emitted_event_id": str(event.id), "emitted_event": event.event},
            [
                {
                    "prefect.resource.id": f"prefect.event.{event.id}",
                    "prefect.resource.role": "emitted-event",
                }
            ],
        )


_HTTP: httpx.Client | None = None


def _http_client() -> httpx.Client:
    """One shared, thread-safe client: building one per call costs an SSL context each time."""
    global _HTTP
    if _HTTP is None:
        _HTTP = httpx.Client(follow_redirects=False, trust_env=False)
    return _HTTP


def _build_event(data: dict[str, Any], *, follows: uuid.UUID | None) -> Event:
    raw = {
        "occurred": timezone.now(),
        "event": data.get("event"),
        "resource": data.get("resource"),
        "related": data.get("related") or [],
        "payload": data.get("payload") or {},
        "id": uuid.uuid4(),
        "follows": follows,
    }
    try:
        return schema.parse_event(raw, limits=Limits.from_settings())
    except EventInvalid as exc:
        raise ValueError(str(exc)) from None


class _AutomationCommand(Action):
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

    def summary(self) -> str:
        target = str(self.automation_id) if self.automation_id else "the inferred automation"
        return f"{self.label.lower()} {target}"

    def run(self, ctx: RunContext) -> Outcome:
        from automations.models import Automation

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
        target.set_enabled(self.enable)
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


class PauseAutomation(_AutomationCommand):
    type: Literal["pause-automation"] = "pause-automation"
    label: ClassVar[str] = "Pause automation"
    enable: ClassVar[bool] = False


class ResumeAutomation(_AutomationCommand):
    type: Literal["resume-automation"] = "resume-automation"
    label: ClassVar[str] = "Resume automation"
    enable: ClassVar[bool] = True


ACTIONS: dict[str, type[Action]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        DoNothing,
        CallWebhook,
        SendNotification,
        EmitEvent,
        PauseAutomation,
        ResumeAutomation,
    )
}


class ActionsInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def parse_action(data: Any, *, loc: str = "action") -> Action:
    """Validate one action (and its templates); raise `ActionsInvalid` with field errors."""
    if not isinstance(data, dict):
        raise ActionsInvalid([{"field": loc, "message": "must be a JSON object"}])
    kind = data.get("type")
    if kind == "call-webhook" and "block_document_id" in data and "url" not in data:
        raise ActionsInvalid(
            [
                {
                    "field": f"{loc}.block_document_id",
                    "message": (
                        "eventsite has no webhook blocks: give call-webhook a `url` "
                        "(and optionally `method`, `headers`, `payload`) instead of "
                        "Prefect's `block_document_id`"
                    ),
                }
            ]
        )
    cls = ACTIONS.get(kind)
    if cls is None:
        raise ActionsInvalid(
            [
                {
                    "field": f"{loc}.type",
                    "message": f"unknown action type {kind!r}; use one of {', '.join(ACTIONS)}",
                }
            ]
        )
    try:
        action = cls.model_validate(data)
    except ValidationError as exc:
        raise ActionsInvalid(
            [
                {
                    "field": ".".join([loc, *(str(p) for p in err["loc"])]),
                    "message": err["msg"].removeprefix("Value error, "),
                }
                for err in exc.errors(include_url=False)
            ]
        ) from None
    errors = []
    for name, text in action.templates().items():
        try:
            validate_template(text)
        except ValueError as exc:
            errors.append({"field": f"{loc}.{name}", "message": f"{name!r} {exc}"})
    if errors:
        raise ActionsInvalid(errors)
    return action


def parse_actions(items: Any, *, loc: str) -> list[Action]:
    if not isinstance(items, list):
        raise ActionsInvalid([{"field": loc, "message": "must be a list of actions"}])
    actions, errors = [], []
    for i, item in enumerate(items):
        try:
            actions.append(parse_action(item, loc=f"{loc}.{i}"))
        except ActionsInvalid as exc:
            errors += exc.errors
    if errors:
        raise ActionsInvalid(errors)
    return actions


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url[:100]


# --- performing an action run --------------------------------------------------------------------


def backoff(attempt: int) -> timedelta:
    """Delay before the next attempt after `attempt` failed: base · 2^(attempt-1), capped."""
    base = settings.EVENTSITE_ACTION_RETRY_BASE.total_seconds()
    return timedelta(seconds=min(base * 2 ** (attempt - 1), 300))


def claim(run_id: uuid.UUID, *, now: datetime | None = None) -> bool:
    """Take a due run for this process; only one engine can win it."""
    from automations.models import ActionRun

    now = now or timezone.now()
    return bool(
        ActionRun.objects.filter(
            pk=run_id, status=ActionRun.Status.PENDING, next_attempt__lte=now
        ).update(status=ActionRun.Status.RUNNING, started=now, attempts=F("attempts") + 1)
    )


def perform(run_id: uuid.UUID, *, now: Callable[[], datetime] = timezone.now) -> str | None:
    """Claim and perform one due action run; record the attempt and emit its events.

    Returns the run's new status, or None when another worker had it.
    """
    from automations.models import ActionRun

    if not claim(run_id, now=now()):
        return None
    run = ActionRun.objects.select_related("automation", "firing").get(pk=run_id)
    automation = run.automation
    firing = run.firing
    triggering_event = Event.from_wire(run.triggering_event) if run.triggering_event else None
    events = [Event.from_wire(e) for e in _firing_events(firing.firing)]
    ctx = RunContext(
        automation=automation,
        template=template_context(
            automation=automation.to_api(),
            event=triggering_event,
            labels=firing.triggering_labels,
            firing=firing.firing,
            events=events,
        ),
        triggering_event=triggering_event,
        triggered=firing.triggered,
        invocation=run.id,
    )
    outcome = Outcome()
    retry = False
    reason = ""
    try:
        action = parse_action(run.action)
        outcome = action.run(ctx)
    except ActionsInvalid as exc:
        reason = f"The action is invalid: {exc}"
    except ActionRetry as exc:
        reason, retry = exc.reason, True
        outcome.details = exc.details
    except ActionFailed as exc:
        reason = exc.reason
        outcome.details = exc.details
    except Exception as exc:  # a bug in an action must not take the engine down
        logger.exception("action %s of automation %s crashed", run.kind, automation.id)
        reason = f"Action crashed: {exc!r}"

    finished = now()
    max_attempts = settings.EVENTSITE_ACTION_MAX_ATTEMPTS
    will_retry = bool(reason) and retry and run.attempts < max_attempts
    with transaction.atomic():
        if run.triggered_event_id is None:
            run.triggered_event_id = uuid.uuid4()
            _emit_action_event(run, "triggered", firing.triggered, outcome, triggering_event)
        details = {**outcome.details}
        if reason:
            run.status = ActionRun.Status.PENDING if will_retry else ActionRun.Status.FAILED
            run.last_error = reason[:ERROR_LIMIT]
            run.next_attempt = finished + backoff(run.attempts) if will_retry else None
            details = {
                **details,
                "reason": reason[:ERROR_LIMIT],
                "attempt": run.attempts,
                "will_retry": will_retry,
            }
            _emit_action_event(
                run, "failed", finished, Outcome(details, outcome.related), triggering_event
            )
        else:
            run.status = ActionRun.Status.SUCCEEDED
            run.last_error = ""
            run.next_attempt = None
            _emit_action_event(run, "executed", finished, outcome, triggering_event)
        run.result = outcome.details
        run.result_excerpt = _excerpt(outcome.details)
        if run.status != ActionRun.Status.PENDING:
            run.finished = finished
        run.save(
            update_fields=[
                "status",
                "last_error",
                "next_attempt",
                "result",
                "result_excerpt",
                "finished",
                "triggered_event_id",
                "updated",
            ]
        )
    return run.status


def _firing_events(firing: dict[str, Any]) -> list[dict]:
    own = [firing["triggering_event"]] if firing.get("triggering_event") else []
    return own + [
        e for child in firing.get("triggering_firings", []) for e in _firing_events(child)
    ]


def _excerpt(details: dict[str, Any]) -> str:
    if not details:
        return ""
    if "status_code" in details:
        return f"HTTP {details['status_code']}: {str(details.get('response_body', ''))[:200]}"
    return json.dumps(details, default=_json_default)[:300]


def _emit_action_event(
    run, kind: str, occurred: datetime, outcome: Outcome, triggering_event: Event | None
) -> None:
    """Emit `prefect.automation.action.<kind>` as Prefect does (reference §5.4)."""
    automation = run.automation
    trigger = automation.trigger or {}
    resource = {
        "prefect.resource.id": automation.resource_id,
        "prefect.resource.name": automation.name,
        "prefect.trigger-type": trigger.get("type", "event"),
    }
    if trigger.get("type") == "event":
        resource["prefect.posture"] = trigger.get("posture", "Reactive")
    related = list(outcome.related)
    if run.firing.triggered_event_id:
        related.append(
            {
                "prefect.resource.id": f"prefect.event.{run.firing.triggered_event_id}",
                "prefect.resource.role": "automation-triggered-event",
            }
        )
    if triggering_event is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.event.{triggering_event.id}",
                "prefect.resource.role": "triggering-event",
            }
        )
    payload = {"action_index": run.action_index, "action_type": run.kind, "invocation": str(run.id)}
    if kind == "triggered":
        follows = None
        if triggering_event and abs(occurred - triggering_event.occurred) < FOLLOWS_WINDOW:
            follows = triggering_event.id
        event_id = run.triggered_event_id
    else:
        payload = {**payload, **outcome.details}
        follows = run.triggered_event_id
        event_id = uuid.uuid4()
    emit(
        Event(
            occurred=occurred,
            event=f"prefect.automation.action.{kind}",
            resource=resource,
            related=related,
            payload=json.loads(json.dumps(payload, default=_json_default)),
            id=event_id,
            follows=follows,
        ),
        source="automations",
    )
