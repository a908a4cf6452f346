"""The webhook receiver: `/hooks/<slug>` turns any HTTP request into an event (reference §6).

One request is handled in three steps, shared by every way in:

1. `Incoming` — the request as the template sees it (method, headers with secrets removed, body
   up to the size limit, query);
2. `evaluate(webhook, incoming)` — render the webhook's template in the sandbox, complete the
   event with defaults, validate it with `schema.parse_event`; pure, also used by the test panel;
3. `write(...)` — in one transaction, the event (through `ingest.store`, the one write path), a
   `prefect-cloud.webhook.received` / `.failed` notice and the `WebhookRequest` log row. Every
   request is logged, accepted or not: nothing a sender posted is lost.

Ways in: `receive` is the Django view (the URL in `eventsite/urls.py`; used by the test client
and any WSGI deployment); under `manage.py serve`, `events.webhooks.asgi` answers `/hooks/`
before Django with the same three steps, batched.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any
from urllib.parse import parse_qsl

import orjson
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from events import schema, templating
from events.ingest import internal_event, store
from events.schema import RESOURCE_ID, RESOURCE_ROLE, EventInvalid, Limits
from events.webhooks.models import Webhook, WebhookRequest

logger = logging.getLogger(__name__)

Outcome = WebhookRequest.Outcome

# Credentials and proxy/tracing headers never reach a template, the log or an event.
REDACTED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "forwarded",
        "via",
        "x-real-ip",
        "x-csrftoken",
        "x-api-key",
        "x-auth-token",
        "traceparent",
        "tracestate",
    }
)
REDACTED_PREFIXES = ("x-forwarded", "x-b3", "x-cloud-trace", "x-envoy", "x-prefect", "proxy-")
# How much of a body / rendered text a notice event carries; the log row keeps the rest.
NOTICE_PREVIEW_CHARS = 16_384
STORED_RENDERED_CHARS = 100_000
SLUG_PATH = re.compile(r"^/hooks/(?P<slug>[A-Za-z0-9_-]{1,200})/?$")
WEBHOOK_ROLE = "webhook"
UNKNOWN_WEBHOOK_ID = "prefect-cloud.webhook.unknown"


def max_body_bytes() -> int:
    return settings.EVENTSITE_WEBHOOK_MAX_BODY_BYTES


def is_redacted(name: str) -> bool:
    name = name.lower()
    return name in REDACTED_HEADERS or name.startswith(REDACTED_PREFIXES)


class Headers(dict):
    """Request headers for templates: lower-case keys, looked up case-insensitively."""

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()):
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((str(k).lower(), str(v)) for k, v in pairs)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower() if isinstance(key, str) else key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower() if isinstance(key, str) else key, default)


@dataclass
class Incoming:
    """One received request, as the log keeps it and the template sees it."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names, secrets removed
    body: bytes = b""
    truncated: bool = False

    @classmethod
    def build(
        cls,
        *,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        truncated: bool = False,
    ) -> Incoming:
        kept: dict[str, str] = {}
        for name, value in headers:
            name = name.lower()
            if is_redacted(name):
                continue
            kept[name] = f"{kept[name]}, {value}" if name in kept else value
        return cls(
            method=method.upper(),
            path=path,
            query=query,
            headers=kept,
            body=body,
            truncated=truncated,
        )

    @classmethod
    def from_request(cls, request: HttpRequest, *, limit: int) -> Incoming:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        declared_size = int(declared) if declared.isdigit() else 0
        body = request.read(limit + 1) if declared_size <= limit else request.read(limit)
        truncated = declared_size > limit or len(body) > limit
        return cls.build(
            method=request.method or "GET",
            path=request.path,
            query=request.META.get("QUERY_STRING", ""),
            headers=request.headers.items(),
            body=body[:limit],
            truncated=truncated,
        )

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def parsed_body(self) -> Any:
        """JSON → its value; a form → a flat dict of fields; anything else → JSON or the text."""
        if not self.body:
            return ""
        text = self.body.decode("utf-8", errors="replace")
        if self.content_type == "application/x-www-form-urlencoded":
            try:
                return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=10_000))
            except ValueError:
                return text
        if self.content_type == "multipart/form-data":
            return _multipart_fields(self.headers.get("content-type", ""), self.body) or text
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return text

    def query_params(self) -> dict[str, str]:
        try:
            return dict(parse_qsl(self.query, keep_blank_values=True, max_num_fields=1_000))
        except ValueError:
            return {}

    def context(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "headers": Headers(self.headers),
            "body": self.parsed_body(),
            "query": self.query_params(),
        }


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart form; a file field gives its file name, not its content."""
    message = BytesParser(policy=email_policy).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields: dict[str, str] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        filename = part.get_filename()
        if filename is not None:
            fields[name] = filename
        else:
            payload = part.get_payload(decode=True) or b""
            fields[name] = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields


@dataclass
class Result:
    """What became of one request: the answer and, when accepted, the event."""

    status: int
    outcome: str
    error: str = ""
    rendered: str = ""
    event: schema.Event | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 204


def evaluate(webhook: Webhook, incoming: Incoming) -> Result:
    """Render the template against the request and validate the event it describes."""
    limits = Limits.from_settings()
    try:
        rendered = templating.render(
            webhook.template, incoming.context(), max_output=limits.size_bytes
        )
    except (templating.TemplateInvalid, templating.RenderFailed) as exc:
        return Result(400, Outcome.FAILED, f"Template error: {exc}")
    try:
        data = orjson.loads(rendered)
    except orjson.JSONDecodeError as exc:
        return Result(
            400, Outcome.FAILED, f"The template did not render valid JSON: {exc}", rendered
        )
    if not isinstance(data, dict):
        return Result(
            400,
            Outcome.FAILED,
            f"The template must render a JSON object, not {type(data).__name__}.",
            rendered,
        )
    try:
        event = schema.parse_event(complete(data, webhook, incoming), limits=limits)
    except EventInvalid as exc:
        return Result(400, Outcome.FAILED, f"Invalid event: {exc}", rendered)
    return Result(204, Outcome.ACCEPTED, rendered=rendered, event=event)


def complete(data: dict[str, Any], webhook: Webhook, incoming: Incoming) -> dict[str, Any]:
    """Fill in what a template may leave out: occurred, id, the webhook, and a payload."""
    data = dict(data)
    if data.get("occurred") is None:
        data["occurred"] = timezone.now()
    if data.get("id") is None:
        data["id"] = uuid.uuid4()
    related = data.get("related")
    if related is None:
        related = []
    if isinstance(related, list):
        data["related"] = [
            *related,
            {
                RESOURCE_ID: webhook.resource_id,
                RESOURCE_ROLE: WEBHOOK_ROLE,
                "prefect.resource.name": webhook.name,
            },
        ]
    if data.get("payload") is None:
        data["payload"] = {
            "method": incoming.method,
            "headers": incoming.headers,
            "body": incoming.parsed_body(),
        }
    return data


def rejection(webhook: Webhook | None, incoming: Incoming) -> Result | None:
    """The answer for a request that is refused before its template runs, if it is."""
    if webhook is None:
        return Result(404, Outcome.UNKNOWN, "No webhook has this URL; it may have been rotated.")
    if not webhook.enabled:
        return Result(410, Outcome.DISABLED, "This webhook is disabled.")
    if incoming.truncated:
        limit = max_body_bytes()
        return Result(413, Outcome.TOO_LARGE, f"The body is larger than {limit} bytes.")
    return None


# --- the log and the notices --------------------------------------------------------------------


@dataclass
class Write:
    """What one request adds to the database: its log row and its events."""

    row: WebhookRequest
    events: list[schema.Event]


def _preview(text: str) -> str:
    if len(text) <= NOTICE_PREVIEW_CHARS:
        return text
    return text[:NOTICE_PREVIEW_CHARS] + f"… ({len(text) - NOTICE_PREVIEW_CHARS} more characters)"


def _webhook_resource(webhook: Webhook | None) -> dict[str, str]:
    if webhook is None:
        return {RESOURCE_ID: UNKNOWN_WEBHOOK_ID, "prefect.resource.name": "unknown webhook"}
    return webhook.audit_resource()


def notice(
    webhook: Webhook | None,
    incoming: Incoming,
    result: Result,
    *,
    request_id: uuid.UUID,
    now: datetime,
) -> schema.Event:
    """The `prefect-cloud.webhook.received` / `.failed` event for one request (reference §6.4)."""
    payload: dict[str, Any] = {
        "request_id": str(request_id),
        "method": incoming.method,
        "status": result.status,
    }
    if result.accepted:
        payload["event_id"] = str(result.event.id)
        name = "prefect-cloud.webhook.received"
    else:
        name = "prefect-cloud.webhook.failed"
        payload.update(
            outcome=str(result.outcome),
            error=result.error,
            path=incoming.path,
            query=incoming.query,
            headers=incoming.headers,
            body=_preview(incoming.body.decode("utf-8", errors="replace")),
            body_truncated=incoming.truncated,
            rendered=_preview(result.rendered),
        )
    return internal_event(name, resource=_webhook_resource(webhook), payload=payload, occurred=now)


def build_write(
    webhook: Webhook | None,
    slug: str,
    incoming: Incoming,
    result: Result,
    *,
    replay_of: WebhookRequest | None = None,
) -> Write:
    now = timezone.now()
    request_id = uuid.uuid4()
    row = WebhookRequest(
        id=request_id,
        webhook=webhook,
        slug=slug,
        received=now,
        method=incoming.method[:16],
        path=incoming.path,
        query=incoming.query,
        headers=incoming.headers,
        body=incoming.body,
        body_truncated=incoming.truncated,
        outcome=result.outcome,
        status=result.status,
        rendered=result.rendered[:STORED_RENDERED_CHARS],
        error=result.error,
        event_id=result.event.id if result.event else None,
        replay_of=replay_of,
    )
    events = [result.event] if result.event else []
    events.append(notice(webhook, incoming, result, request_id=request_id, now=now))
    return Write(row=row, events=events)


def write(writes: list[Write]) -> None:
    """Store the events and log rows of several requests in one transaction."""
    with transaction.atomic():
        store([e for w in writes for e in w.events], source="webhook")
        _insert_rows([w.row for w in writes])


_ROW_COLUMNS = (
    "id",
    "webhook_id",
    "slug",
    "received",
    "method",
    "path",
    "query",
    "headers",
    "body",
    "body_truncated",
    "outcome",
    "status",
    "rendered",
    "error",
    "event_id",
    "replay_of_id",
)


def _insert_rows(rows: list[WebhookRequest]) -> None:
    # A multi-row INSERT like ingest's: the ORM's bulk_create spends ~0.2 ms of CPU per row here,
    # more than the rest of the request.
    connection = connections[WebhookRequest.objects.db]
    ops = connection.ops
    native_uuid = connection.features.has_native_uuid_field
    json_placeholder = "%s::jsonb" if connection.vendor == "postgresql" else "%s"

    def uid(value):
        if value is None:
            return None
        return value if native_uuid else value.hex

    placeholders = ["%s"] * len(_ROW_COLUMNS)
    placeholders[_ROW_COLUMNS.index("headers")] = json_placeholder
    row_sql = f"({', '.join(placeholders)})"
    table = ops.quote_name(WebhookRequest._meta.db_table)
    columns = ", ".join(ops.quote_name(c) for c in _ROW_COLUMNS)
    per_statement = 30_000 // len(_ROW_COLUMNS)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for r in chunk:
                params += (
                    uid(r.id),
                    uid(r.webhook_id),
                    r.slug,
                    ops.adapt_datetimefield_value(r.received),
                    r.method,
                    r.path,
                    r.query,
                    orjson.dumps(r.headers).decode(),
                    bytes(r.body),
                    r.body_truncated,
                    str(r.outcome),
                    r.status,
                    r.rendered,
                    r.error,
                    uid(r.event_id),
                    uid(r.replay_of_id),
                )
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(chunk))}",
                params,
            )


def write_each(writes: list[Write]) -> list[Exception | None]:
    """`write` the batch; if it fails, write each on its own so one bad request sinks no other."""
    try:
        write(writes)
        return [None] * len(writes)
    except DatabaseError:
        if len(writes) == 1:
            raise
    errors: list[Exception | None] = []
    for item in writes:
        try:
            write([item])
            errors.append(None)
        except DatabaseError as exc:
            logger.exception("webhook request %s could not be stored", item.row.id)
            errors.append(exc)
    return errors


def find(slug: str) -> Webhook | None:
    return Webhook.objects.filter(slug=slug).first()


def handle(slug: str, incoming: Incoming) -> Result:
    """Look up, evaluate, store and log one request in this thread (the synchronous path)."""
    webhook = find(slug)
    result = rejection(webhook, incoming) or evaluate(webhook, incoming)
    write_each([build_write(webhook, slug, incoming, result)])
    return result


def replay(original: WebhookRequest) -> WebhookRequest:
    """Run a logged request through the webhook's current template again, as a new log row."""
    webhook = original.webhook
    incoming = Incoming(
        method=original.method,
        path=original.path,
        query=original.query,
        headers=dict(original.headers),
        body=bytes(original.body),
        truncated=original.body_truncated,
    )
    result = rejection(webhook, incoming) or evaluate(webhook, incoming)
    item = build_write(webhook, original.slug, incoming, result, replay_of=original)
    write_each([item])
    return item.row


def response_for(result: Result) -> tuple[int, bytes]:
    if result.accepted:
        return 204, b""
    return result.status, orjson.dumps({"detail": result.error})


@csrf_exempt
def receive(request: HttpRequest, slug: str) -> HttpResponse:
    """`/hooks/<slug>`, any method, no session or CSRF: the URL itself is the credential."""
    result = handle(slug, Incoming.from_request(request, limit=max_body_bytes()))
    status, body = response_for(result)
    if status == 204:
        return HttpResponse(status=204)
    return HttpResponse(body, status=status, content_type="application/json")
