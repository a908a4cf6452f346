"""The API sockets, in Prefect's protocol (shared/reference §2.4, §2.5).

`/api/events/in` takes one event per text frame and writes them in micro-batches through the one
write path; `/api/events/out` streams stored and live events that match a subscriber's filter.
Both authenticate by API token and nothing else: the `prefect` subprotocol's auth message, or the
upgrade's Authorization header (legacy and Cloud-style clients, which offer no subprotocol).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import DatabaseError, OperationalError, transaction
from pydantic import ValidationError

from events import live, queries, schema
from events.accounts import revocation
from events.accounts.roles import Capability, grants, readable
from events.api.auth import authenticate_secret, secret_from_auth_string, secret_from_authorization
from events.filters import EventFilter
from events.ingest import ingest, internal_event, store
from events.models import ApiToken
from eventsite.query_deadline import is_timeout, reads_bounded

logger = logging.getLogger(__name__)

SUBPROTOCOL = "prefect"
# Close codes and reasons are Prefect's, so its client reports them as it does for its server.
POLICY_VIOLATION = 1008
PROTOCOL_ERROR = 1002
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
EXPECTED_AUTH = "Expected 'auth' message"
NO_TOKEN = "Auth required but no token provided"
INVALID_TOKEN = "Invalid token"
NOT_ALLOWED = "This token's role or scope does not allow this socket"
BACKFILL_TOO_SLOW = "The backfill query took too long; narrow the filter and reconnect"
EXPECTED_FILTER = "Expected 'filter' message"
MAX_REASON_BYTES = 123
AUTH_TIMEOUT_SECONDS = 10.0

REJECTED_EVENT = "eventsite.ingest.rejected"
REJECTED_RESOURCE = {
    schema.RESOURCE_ID: "eventsite.ingest",
    "prefect.resource.name": "Event ingest",
    "eventsite.ingest.source": "websocket",
}
EXCERPT_CHARS = 500

_END = object()


def _reason(text: str) -> str:
    """A close reason that fits in a close frame (125 bytes with the code), cut on a character."""
    return text.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


def _loads(data: str | bytes | None) -> Any:
    try:
        return orjson.loads(data) if data is not None else None
    except orjson.JSONDecodeError:
        return None


@database_sync_to_async
def _authenticate(secret: str) -> tuple[ApiToken | None, frozenset[Capability]]:
    token = authenticate_secret(secret)
    return token, (grants(token.user, token) if token is not None else frozenset())


class _TokenSocket(AsyncWebsocketConsumer):
    """Accept, then authenticate by token before anything else happens on the socket.

    With the `prefect` subprotocol the first frame must be `{"type": "auth", "token": "<n>:<t>"}`
    (the upgrade's Authorization header stands in when the message carries no token); without
    it the header alone authenticates and frames start at once. No token, no socket.
    """

    capability = Capability.READ  # what the token's role or scope must allow

    token: ApiToken | None = None
    watch: revocation.Watch | None = None
    closing = False

    async def connect(self) -> None:
        self.prefect = SUBPROTOCOL in self.scope.get("subprotocols", [])
        header = dict(self.scope.get("headers", [])).get(b"authorization", b"")
        self.header_secret = secret_from_authorization(header.decode("latin-1")) if header else None
        self._auth_timer: asyncio.Task | None = None
        await self.accept(subprotocol=SUBPROTOCOL if self.prefect else None)
        if self.prefect:
            self._auth_timer = asyncio.create_task(self._require_auth_within(AUTH_TIMEOUT_SECONDS))
            return
        if not self.header_secret:
            await self.refuse(POLICY_VIOLATION, NO_TOKEN)
            return
        token = await self._authorize(self.header_secret)
        if token is None:
            return
        self.token = token
        await self.authenticated()

    async def dispatch(self, message) -> None:
        # Channels closes stale database connections before every message, a hop to the
        # database thread that would queue each frame behind the batch being written. All our
        # database work goes through database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if self.closing:
            return
        frame = text_data if text_data is not None else bytes_data
        if self.token is None:
            await self._handshake(frame)
        else:
            await self.on_frame(frame)

    async def _handshake(self, frame) -> None:
        message = _loads(frame)
        if not isinstance(message, dict) or message.get("type") != "auth":
            await self.refuse(POLICY_VIOLATION, EXPECTED_AUTH)
            return
        raw = message.get("token")
        secret = (
            secret_from_auth_string(raw if isinstance(raw, str) else None) or self.header_secret
        )
        if not secret:
            await self.refuse(POLICY_VIOLATION, NO_TOKEN)
            return
        token = await self._authorize(secret)
        if token is None:
            return
        self._cancel_auth_timer()
        self.token = token
        await self.send(text_data='{"type":"auth_success"}')
        await self.authenticated()

    async def _authorize(self, secret: str) -> ApiToken | None:
        """The token when it is valid and its role allows this socket; else refuse (1008)."""
        token, allowed = await _authenticate(secret)
        if token is None:
            await self.refuse(POLICY_VIOLATION, INVALID_TOKEN)
            return None
        if self.capability not in allowed:
            await self.refuse(POLICY_VIOLATION, NOT_ALLOWED)
            return None
        # From now on a revoked token or a demoted user closes the socket (1008).
        self.watch = revocation.watch(
            user_id=token.user_id,
            capability=self.capability,
            close=self._revoked,
            token_id=token.pk,
        )
        return token

    async def _require_auth_within(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.token is None and not self.closing:
            await self.refuse(POLICY_VIOLATION, EXPECTED_AUTH)

    def _cancel_auth_timer(self) -> None:
        if self._auth_timer is not None and self._auth_timer is not asyncio.current_task():
            self._auth_timer.cancel()
        self._auth_timer = None

    async def refuse(self, code: int, reason: str) -> None:
        """Close with a code and a reason the client shows, and ignore whatever still arrives."""
        if self.closing:
            return
        self.closing = True
        logger.info("closing %s: %s %s", self.scope.get("path"), code, reason)
        await self.close(code=code, reason=_reason(reason))

    async def disconnect(self, code) -> None:
        self._cancel_auth_timer()
        if self.watch is not None:
            self.watch.stop()

    async def _revoked(self, reason: str) -> None:
        await self.refuse(POLICY_VIOLATION, reason)

    # --- for subclasses ----------------------------------------------------------------------

    async def authenticated(self) -> None:
        """The socket is authenticated (`self.token`); frames go to `on_frame` from now on."""

    async def on_frame(self, frame: str | bytes | None) -> None:
        raise NotImplementedError


class EventsInConsumer(_TokenSocket):
    """`/api/events/in`: every text frame is one event, stored once per id.

    Frames are written in micro-batches (what has arrived, up to `batch_size`; in a burst after
    at most `linger` seconds more), one transaction each. The frame queue is bounded and is only read by the
    writer, so a slow database stops this socket from being read: the sender slows down, and
    nothing is dropped. An invalid frame is skipped, counted and stored as an
    `eventsite.ingest.rejected` event; the connection stays up.
    """

    capability = Capability.WRITE_EVENTS

    batch_size = 1000
    linger = 0.003
    write_attempts = 4

    async def connect(self) -> None:
        self.frames: asyncio.Queue = asyncio.Queue(maxsize=self.batch_size)
        self.writer: asyncio.Task | None = None
        self._end_queued = False
        self._unqueued = None  # a frame whose queueing was cut short by a cancellation
        self.stored = self.duplicates = self.rejected = 0
        await super().connect()

    async def __call__(self, scope, receive, send):
        # Channels' loop, minus the channel layer (this socket is in no group) and with one
        # receive at a time, so a cancellation can never take a frame already received with it.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            # The server is shutting down (it stopped reading the socket first) or gave up
            # waiting for us: write what was received, including frames still queued in the
            # server, before going away. Daphne repeats its cancel every second; the drain is a
            # task of its own so those repeats cannot cut it short.
            drain = asyncio.ensure_future(self._drain_on_shutdown(receive))
            while not drain.done():
                try:
                    await asyncio.shield(drain)
                except asyncio.CancelledError:
                    continue
            raise

    async def authenticated(self) -> None:
        self.writer = asyncio.create_task(self._write_loop())

    async def on_frame(self, frame) -> None:
        try:
            await self.frames.put(frame)
        except asyncio.CancelledError:
            self._unqueued = frame
            raise

    async def disconnect(self, code) -> None:
        await super().disconnect(code)
        await self._finish_writing()
        logger.debug(
            "events/in closed (%s): %d stored, %d duplicates, %d rejected",
            code,
            self.stored,
            self.duplicates,
            self.rejected,
        )

    async def _finish_writing(self) -> None:
        """Let the writer store everything queued, then stop it."""
        if self.writer is None:
            return
        if not self.writer.done() and not self._end_queued:
            await self.frames.put(_END)
            self._end_queued = True
        await asyncio.shield(self.writer)

    async def _drain_on_shutdown(self, receive) -> None:
        if self.writer is None:
            return
        leftover = [self._unqueued] if self._unqueued is not None else []
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=0.05)
            except (TimeoutError, asyncio.CancelledError):
                break
            if message.get("type") != "websocket.receive":
                break
            leftover.append(message.get("text") or message.get("bytes"))
        await self._finish_writing()
        if leftover and not self.closing:
            for start in range(0, len(leftover), self.batch_size):
                await self._write(leftover[start : start + self.batch_size])

    async def _write_loop(self) -> None:
        while True:
            first = await self.frames.get()
            if first is _END:
                return
            batch = [first]
            finished = self._take_ready(batch)
            # Linger for more only in a burst (frames already queued behind the first): a lone
            # frame is written at once, so a trickle of events pays no batching delay.
            if not finished and 1 < len(batch) < self.batch_size:
                await asyncio.sleep(self.linger)
                finished = self._take_ready(batch)
            if not await self._write(batch) or finished:
                return

    def _take_ready(self, batch: list) -> bool:
        """Move frames that are already queued into `batch`; True when the end marker came."""
        while len(batch) < self.batch_size:
            try:
                frame = self.frames.get_nowait()
            except asyncio.QueueEmpty:
                return False
            if frame is _END:
                return True
            batch.append(frame)
        return False

    async def _write(self, batch: list) -> bool:
        delay = 0.5
        for attempt in range(1, self.write_attempts + 1):
            try:
                stored, duplicates, rejected = await _store_frames(batch, token=self.token)
            except Exception:
                if attempt == self.write_attempts:
                    logger.exception("events/in: could not store %d events; closing", len(batch))
                    # The client resends what it has not seen confirmed when it reconnects.
                    await self.refuse(INTERNAL_ERROR, "Could not store events; reconnect")
                    while not self.frames.empty():  # unblock a receive waiting to queue
                        self.frames.get_nowait()
                    return False
                logger.warning("events/in: write failed (attempt %d), retrying", attempt)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            self.stored += stored
            self.duplicates += duplicates
            self.rejected += rejected
            return True
        return False


@database_sync_to_async
def _store_frames(frames: list, *, token: ApiToken | None) -> tuple[int, int, int]:
    """Parse and store a batch of frames in one transaction; report the invalid ones as events."""
    items: list[Any] = []
    positions: list[int] = []  # index in `frames` of each parsed item
    rejections: list[schema.Event] = []
    biggest = 0
    for position, frame in enumerate(frames):
        if isinstance(frame, bytes | bytearray):
            biggest = max(biggest, len(frame))
        elif isinstance(frame, str):
            biggest = max(biggest, len(frame) * 4)  # never more than 4 UTF-8 bytes a character
        try:
            items.append(orjson.loads(frame))
            positions.append(position)
        except (orjson.JSONDecodeError, TypeError) as exc:
            rejections.append(_rejection(frame, f"The frame is not valid JSON: {exc}", [], token))

    limits = schema.Limits.from_settings()
    # A frame's size bounds its event's size, so per-event sizes need no re-serialising when
    # every frame is within the limit.
    body_size = biggest if biggest <= limits.size_bytes else None
    stored, duplicates, refused = _store_items(items, positions, frames, token, limits, body_size)
    rejections += refused
    if rejections:
        with transaction.atomic():
            store(rejections, source="internal")
    for rejection in rejections:
        logger.warning("events/in: skipped a frame: %s", rejection.payload["reason"])
    return stored, duplicates, len(rejections)


def _store_items(
    items: list, positions: list[int], frames: list, token, limits, body_size
) -> tuple[int, int, list[schema.Event]]:
    """Store the valid items in one transaction; (stored, duplicates, rejection events).

    A storage error splits the batch in halves, down to the one event the store refuses (it is
    then reported like an invalid one): a bad event never takes its neighbours with it."""
    rejections: list[schema.Event] = []
    try:  # `store` is atomic by itself (on PostgreSQL one statement: no BEGIN, no savepoint)
        result = ingest(
            items, source="websocket", all_or_nothing=False, body_size=body_size, limits=limits
        )
    except DatabaseError as exc:
        if not items:
            raise
        if len(items) == 1:
            frame = frames[positions[0]]
            logger.warning("events/in: the store refused an event: %s", exc)
            reason = f"The store refused this event: {type(exc).__name__}: {exc}"
            return 0, 0, [_rejection(frame, reason, [], token)]
        half = len(items) // 2
        first = _store_items(items[:half], positions[:half], frames, token, limits, body_size)
        second = _store_items(items[half:], positions[half:], frames, token, limits, body_size)
        return first[0] + second[0], first[1] + second[1], first[2] + second[2]
    problems: dict[int, list[schema.Problem]] = {}
    for index, problem in result.rejected:
        problems.setdefault(index, []).append(problem)
    for index, found in problems.items():
        detail = "; ".join(f"{p.field or 'event'}: {p.message}" for p in found)
        frame = frames[positions[index]]
        rejections.append(_rejection(frame, f"Invalid event: {detail}", found, token))
    return len(result.stored), result.duplicates, rejections


def _rejection(
    frame, reason: str, problems: list[schema.Problem], token: ApiToken | None
) -> schema.Event:
    text = frame.decode(errors="replace") if isinstance(frame, bytes | bytearray) else str(frame)
    # The excerpt is stored: no NUL, no lone surrogate (what made the frame unstorable, maybe).
    excerpt = text[:EXCERPT_CHARS].replace("\x00", "\ufffd")
    excerpt = excerpt.encode("utf-8", "replace").decode("utf-8")
    reason = reason.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    related = []
    if token is not None:
        related.append(
            {
                schema.RESOURCE_ID: f"eventsite.api-token.{token.pk}",
                schema.RESOURCE_ROLE: "api-token",
                "prefect.resource.name": token.name,
            }
        )
    return internal_event(
        REJECTED_EVENT,
        resource=dict(REJECTED_RESOURCE),
        related=related,
        payload={
            "source": "/api/events/in",
            "reason": reason,
            "problems": [p.as_dict() for p in problems],
            "frame": excerpt,
            "frame_length": len(text),
            "truncated": len(text) > EXCERPT_CHARS,
        },
    )


def _id_text(event: schema.Event) -> str:
    return str(event.id)


def _event_frame(event: schema.Event) -> str:
    return orjson.dumps({"type": "event", "event": event.to_wire()}).decode()


class EventsOutConsumer(_TokenSocket):
    """`/api/events/out`: after auth, one filter message; then backfill and live events.

    Live events come from the store through the process's live reader (`events.live`). The
    socket follows the log before reading the backfill, so no event falls between the two; ids
    sent by the backfill are skipped when they arrive live. Live events wait in a bounded queue:
    a subscriber that reads too slowly to keep up is closed with 1013 and a reason (and
    reconnects, resuming from the backfill) instead of silently missing events.
    """

    # No channel of its own: events come from the process's tail (`events.live`), so a channel
    # layer that fails (Redis restarting) cannot take the socket down with it.
    channel_layer_alias = None
    max_pending = 10_000
    backfill_page_size = 250
    max_backfill = timedelta(minutes=15)
    dedup_window = 60.0  # seconds after the backfill during which its ids are still skipped live

    async def connect(self) -> None:
        self.filter: EventFilter | None = None
        self.subscription: live.Subscription | None = None
        self.streamer: asyncio.Task | None = None
        await super().connect()

    async def on_frame(self, frame) -> None:
        if self.filter is not None:
            return  # like Prefect, nothing the client says after its filter changes anything
        message = _loads(frame)
        if isinstance(message, dict) and message.get("type") == "auth" and not self.prefect:
            # An older client authenticated by header may still say hello first.
            await self.send(text_data='{"type":"auth_success"}')
            return
        if not isinstance(message, dict) or message.get("type") != "filter":
            await self.refuse(PROTOCOL_ERROR, EXPECTED_FILTER)
            return
        try:
            event_filter = live.subscription_filter(message.get("filter"), self.max_backfill)
            event_filter = await database_sync_to_async(readable)(
                event_filter, self.token.user, self.token
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "filter"
            await self.refuse(PROTOCOL_ERROR, f"Invalid filter: {where}: {first['msg']}")
            return
        except ValueError as exc:
            await self.refuse(PROTOCOL_ERROR, f"Invalid filter: {exc}")
            return
        # Live first, then the backfill: an event stored in between arrives both ways and the
        # duplicate is skipped, rather than arriving neither way.
        self.filter = event_filter
        self.subscription = await live.subscribe(
            event_filter, max_pending=self.max_pending, on_too_slow=self._too_slow
        )
        self.streamer = asyncio.create_task(self._stream(backfill=message.get("backfill", True)))

    def _too_slow(self, reason: str) -> None:
        logger.warning("events/out: subscriber fell %d events behind; closing", self.max_pending)
        asyncio.get_running_loop().create_task(self._close_too_slow(reason))

    async def _close_too_slow(self, reason: str) -> None:
        await self._stop_streaming()
        await self.refuse(TRY_AGAIN_LATER, reason)

    async def _stream(self, *, backfill: bool) -> None:
        sent: set[str] = set()
        if backfill:
            after = None
            while True:
                try:
                    page = await _backfill_page(self.filter, after, self.backfill_page_size)
                except OperationalError as exc:
                    if not is_timeout(exc):
                        raise
                    await self.refuse(TRY_AGAIN_LATER, BACKFILL_TOO_SLOW)
                    await self._stop_streaming()
                    return
                for wire in page:
                    sent.add(wire["id"])
                    await self.send(
                        text_data=orjson.dumps({"type": "event", "event": wire}).decode()
                    )
                if len(page) < self.backfill_page_size:
                    break
                after = page[-1]
        # Events the backfill already read arrive live within moments of it (they were stored
        # before its query); past this window the set only costs memory.
        loop = asyncio.get_running_loop()
        forget_at = loop.time() + self.dedup_window

        def skip(item: live.LiveEvent) -> bool:  # the backfill sent it
            nonlocal sent
            if not sent:
                return False
            if loop.time() > forget_at:
                sent = set()
                return False
            return item.cached("id", _id_text) in sent

        # Under eventsite's server an idle socket is sent each live event at once, by the tail.
        send_now = (self.scope.get("extensions") or {}).get(live.SEND_NOW_EXTENSION)
        sink = None
        if send_now:

            def sink(items: list[live.LiveEvent]) -> bool:
                if sent:
                    items = [item for item in items if not skip(item)]
                    if not items:
                        return True
                return send_now([item.cached("out", _event_frame) for item in items])

        while True:
            for item in await self.subscription.take(sink):
                if not skip(item):
                    await self.send(text_data=item.cached("out", _event_frame))

    async def _stop_streaming(self) -> None:
        if self.subscription is not None:
            self.subscription.close()
        if self.streamer is not None and self.streamer is not asyncio.current_task():
            self.streamer.cancel()
            try:
                await self.streamer
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("events/out: stream failed")
            self.streamer = None

    async def disconnect(self, code) -> None:
        await super().disconnect(code)
        await self._stop_streaming()


@database_sync_to_async
def _backfill_page(event_filter: EventFilter, after: dict | None, size: int) -> list[dict]:
    cursor = None
    if after is not None:
        cursor = (schema.parse_datetime(after["occurred"]), uuid.UUID(after["id"]))
    with reads_bounded():
        return queries.backfill_page(event_filter, cursor, size)
