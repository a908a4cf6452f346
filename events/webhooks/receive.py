"""The webhook receiver: `/hooks/<slug>` turns any HTTP request into an event (reference §6).

One request is handled in four steps, shared by every way in:

1. `Incoming` (`events.webhooks.incoming`) — the request as the template sees it (method, headers
   with credentials removed, body up to the size limit, query);
2. `admit(webhook, incoming)` — 404 unknown URL, 410 disabled, 413 too large, 401 when the
   webhook's verification (`events.webhooks.verify`) fails; a Stripe-style signature must also
   be `verify.claim`ed, once;
3. `evaluate(webhook, incoming)` — render the webhook's template in the sandbox (strict: an
   undefined variable is an error), complete the event with defaults, validate it with
   `schema.parse_event`; pure, also used by the test panel;
4. `write(...)` — in one transaction, the event (through `ingest.store`, the one write path), a
   `prefect-cloud.webhook.received` / `.failed` notice and the `WebhookRequest` log row. Every
   request is logged, accepted or not: nothing a sender posted is lost. A request that fails
   its verification is logged and stores no event at all (not even a notice: anyone who has
   the URL could otherwise fill the feed). No event carries a credential: not the slug (it is
   in the path, which notices leave out), not a token, not a signature.

Ways in: `receive` is the Django view (the URL in `eventsite/urls.py`; used by the test client
and any WSGI deployment); under `manage.py serve`, `events.webhooks.asgi` answers `/hooks/`
before Django with the same steps, batched.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from events import schema
from events.ingest import internal_event, store
from events.schema import RESOURCE_ID, RESOURCE_ROLE, EventInvalid, Limits
from events.webhooks import render_workers, verify
from events.webhooks.incoming import Incoming
from events.webhooks.models import Webhook, WebhookRequest

logger = logging.getLogger(__name__)

Outcome = WebhookRequest.Outcome
# How much of a body / rendered text a notice event carries; the log row keeps the rest.
NOTICE_PREVIEW_CHARS = 16_384
STORED_RENDERED_CHARS = 100_000
SLUG_PATH = re.compile(r"^/hooks/(?P<slug>[A-Za-z0-9_-]{1,200})/?$")
WEBHOOK_ROLE = "webhook"
UNKNOWN_WEBHOOK_ID = "prefect-cloud.webhook.unknown"


def max_body_bytes() -> int:
    return settings.EVENTSITE_WEBHOOK_MAX_BODY_BYTES


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


def evaluate(webhook: Webhook, incoming: Incoming, *, occurred: datetime | None = None) -> Result:
    """Render the template against the request and validate the event it describes.

    `occurred` is the default time of the event (now; a replay gives the original request's).
    """
    limits = Limits.from_settings()
    # Body parsing and rendering happen in a worker process (`render_workers`).
    work = render_workers.render(
        webhook.template, webhook.strict, incoming, max_output=limits.size_bytes
    )
    if work.status:
        outcome = Outcome.TOO_LARGE if work.status == 413 else Outcome.FAILED
        return Result(work.status, outcome, work.error, work.rendered)
    data = orjson.loads(work.data)
    rendered = work.rendered
    try:
        event = schema.parse_event(
            complete(data, webhook, incoming, occurred=occurred), limits=limits
        )
    except EventInvalid as exc:
        return Result(400, Outcome.FAILED, f"Invalid event: {exc}", rendered)
    return Result(204, Outcome.ACCEPTED, rendered=rendered, event=event)


def complete(
    data: dict[str, Any],
    webhook: Webhook,
    incoming: Incoming,
    *,
    occurred: datetime | None = None,
) -> dict[str, Any]:
    """Fill in what a template may leave out: occurred, id, the webhook (the payload is filled
    in by `render_workers.render_event_data`, which has the parsed body)."""
    data = dict(data)
    if data.get("occurred") is None:
        data["occurred"] = occurred or timezone.now()
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
    return data


def admit(webhook: Webhook | None, incoming: Incoming) -> tuple[Result | None, verify.Nonce | None]:
    """(the refusal, or None; the signature to `verify.claim` before accepting, if any)."""
    if webhook is None:
        return Result(
            404, Outcome.UNKNOWN, "No webhook has this URL; it may have been rotated."
        ), None
    if not webhook.enabled:
        return Result(410, Outcome.DISABLED, "This webhook is disabled."), None
    if incoming.truncated:
        limit = max_body_bytes()
        return Result(413, Outcome.TOO_LARGE, f"The body is larger than {limit} bytes."), None
    if webhook.verification == Webhook.Verification.NONE:
        return None, None
    check = verify.check(webhook, incoming.all_headers(), incoming.body)
    if not check.ok:
        logger.warning("webhook %s refused a request: %s", webhook.id, check.reason)
        return Result(401, Outcome.UNAUTHORIZED, check.reason), None
    return None, check.nonce


REPLAYED = "This signature was already accepted: a replayed request is refused."


def for_webhook(webhook: Webhook | None, incoming: Incoming) -> Incoming:
    """The request as this webhook logs it: its own signature header is a credential too."""
    if webhook is None:
        return incoming
    return incoming.without(verify.signature_header(webhook))


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
        # Not the path: it holds the slug, the webhook's credential.
        payload.update(
            outcome=str(result.outcome),
            error=result.error,
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
    if webhook is None:
        # Made-up URLs are anyone's: keep what was asked and by whom (method, path, size,
        # address, time), never what was sent, so they cannot fill the database
        # (`unknown_allowed` bounds how many).
        size, source = len(incoming.body), incoming.source or "an unknown address"
        incoming = Incoming(method=incoming.method, path=incoming.path)
        error = f"{result.error} ({size} bytes from {source}, not kept)"
        result = Result(result.status, result.outcome, error)
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
    if result.outcome != Outcome.UNAUTHORIZED:
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


class Budget:
    """At most `per_minute` events a minute, refilled continuously; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens = 0.0
        self.at = time.monotonic()
        self.started = False

    def take(self, per_minute: int) -> bool:
        with self.lock:
            now = time.monotonic()
            if not self.started:
                self.tokens, self.started = float(per_minute), True
            self.tokens = min(per_minute, self.tokens + (now - self.at) * per_minute / 60)
            self.at = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


unknown_budget = Budget()


def unknown_allowed() -> bool:
    """Whether a request to a made-up URL is logged: at most
    `EVENTSITE_WEBHOOK_UNKNOWN_PER_MINUTE` a minute per process; the rest get their 404 only."""
    return unknown_budget.take(settings.EVENTSITE_WEBHOOK_UNKNOWN_PER_MINUTE)


def slug_lookup(slugs) -> Q:
    """Webhooks answering these slugs: the current one, or an old one in its grace period."""
    return Q(slug__in=slugs) | Q(previous_slug__in=slugs, previous_slug_expires__gt=timezone.now())


def find(slug: str) -> Webhook | None:
    return Webhook.objects.filter(slug_lookup([slug])).first()


def handle(slug: str, incoming: Incoming) -> Result:
    """Look up, check, evaluate, store and log one request in this thread (the sync path)."""
    webhook = find(slug)
    incoming = for_webhook(webhook, incoming)
    result, nonce = admit(webhook, incoming)
    if result is None and nonce is not None and not verify.claim(nonce):
        logger.warning("webhook %s refused a replayed signature", webhook.id)
        result = Result(401, Outcome.UNAUTHORIZED, REPLAYED)
    result = result or evaluate(webhook, incoming)
    if webhook is None and not unknown_allowed():
        return result
    write_each([build_write(webhook, slug, incoming, result)])
    return result


def replay(original: WebhookRequest) -> WebhookRequest:
    """Run a logged request through the webhook's current template again, as a new log row.

    The event's default time is the original request's: a replay tells what happened then.
    The verification is not repeated (the log keeps no credential, and an authorized person
    asked); a request that failed it cannot be replayed (`WebhookRequest.replayable`).
    """
    webhook = original.webhook
    incoming = Incoming(
        method=original.method,
        path=original.path,
        query=original.query,
        headers=dict(original.headers),
        body=bytes(original.body),
        truncated=original.body_truncated,
    )
    result = _replay_rejection(webhook, incoming) or evaluate(
        webhook, incoming, occurred=original.received
    )
    item = build_write(webhook, original.slug, incoming, result, replay_of=original)
    write_each([item])
    return item.row


def _replay_rejection(webhook: Webhook | None, incoming: Incoming) -> Result | None:
    if webhook is None:
        return Result(404, Outcome.UNKNOWN, "The webhook no longer exists.")
    if not webhook.enabled:
        return Result(410, Outcome.DISABLED, "This webhook is disabled.")
    if incoming.truncated:
        return Result(413, Outcome.TOO_LARGE, "The body was cut at the size limit.")
    return None


def response_for(result: Result) -> tuple[int, bytes]:
    if result.accepted:
        return 204, b""
    return result.status, orjson.dumps({"detail": result.error})


@csrf_exempt
def receive(request: HttpRequest, slug: str) -> HttpResponse:
    """`/hooks/<slug>`, any method, no session or CSRF: the URL (and, if the webhook asks for
    it, a token or a signature) is the credential."""
    result = handle(slug, Incoming.from_request(request, limit=max_body_bytes()))
    status, body = response_for(result)
    if status == 204:
        return HttpResponse(status=204)
    return HttpResponse(body, status=status, content_type="application/json")
