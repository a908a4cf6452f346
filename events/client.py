"""eventsite's Python SDK: `emit_event(...)` returns the event at once; a thread sends it.

Standalone on purpose: the standard library only (orjson when it happens to be installed), no
Django, no project settings, so any program can copy or import this one file.

    from events.client import emit_event
    emit_event("kiki.sent.event!", {"prefect.resource.id": "kiki.1"}, payload={"name": "kiki"})

Configuration, from the environment, read when the first event is emitted:
- `EVENTSITE_API_URL` (the site, e.g. `http://host:8000`; a trailing `/api` is fine) and
  `EVENTSITE_API_TOKEN` (an API token);
- or Prefect's `PREFECT_API_URL` (`http://host:8000/api`) with `PREFECT_API_AUTH_STRING`
  (`<name>:<token>`) or `PREFECT_API_KEY` (a token).

Events are sent in batches to `POST /api/events`. Connection errors and 5xx answers are retried
with exponential backoff, so a server restart of a few seconds loses nothing; a 4xx answer (an
invalid event) is logged with the server's explanation and that event is not retried. The queue
is bounded (`EVENTSITE_SDK_MAX_QUEUE`, default 100,000): when it is full, new events are dropped
with a warning rather than blocking the program. At interpreter exit the queue is flushed
(for up to `EVENTSITE_SDK_EXIT_TIMEOUT` seconds, default 30).
"""

from __future__ import annotations

import atexit
import base64
import http.client
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit


def _default(value: Any) -> Any:
    """JSON for what payloads commonly hold beyond JSON: datetimes as ISO 8601, the rest as str."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


try:  # faster when present; the SDK does not need it
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, default=_default)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - exercised where orjson is absent

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


__all__ = ["Client", "ClientConfig", "emit_event", "flush", "get_client"]

logger = logging.getLogger("eventsite.client")

RESOURCE_ID = "prefect.resource.id"
RESOURCE_ROLE = "prefect.resource.role"
# Like Prefect's client: `follows` is kept only when the two events are this close in time.
FOLLOWS_WINDOW = timedelta(minutes=5)
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_BACKOFF_SECONDS = 5.0
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class ClientConfig:
    """Where to send and how to authenticate, from explicit values or the environment."""

    def __init__(self, api_url: str | None = None, token: str | None = None):
        env = os.environ
        auth: str | None = None
        if api_url is None and env.get("EVENTSITE_API_URL"):
            api_url = env["EVENTSITE_API_URL"]
            token = token or env.get("EVENTSITE_API_TOKEN")
        elif api_url is None and env.get("PREFECT_API_URL"):
            api_url = env["PREFECT_API_URL"]
            if not token and env.get("PREFECT_API_AUTH_STRING"):
                basic = base64.b64encode(env["PREFECT_API_AUTH_STRING"].encode()).decode()
                auth = f"Basic {basic}"
            token = token or env.get("PREFECT_API_KEY")
        else:
            token = token or env.get("EVENTSITE_API_TOKEN")
        if token and auth is None:
            auth = f"Bearer {token}"
        self.authorization = auth
        self.api_url = _api_base(api_url) if api_url else None

    @property
    def configured(self) -> bool:
        return bool(self.api_url and self.authorization)


def _api_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/api") else url + "/api"


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), as Prefect's client makes them."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant
    return uuid.UUID(int=value)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_event(
    event: str,
    resource: dict[str, str],
    *,
    related: list[dict[str, str]] | None = None,
    payload: dict[str, Any] | None = None,
    occurred: datetime | None = None,
    id: uuid.UUID | str | None = None,
    follows: dict[str, Any] | uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """The event as the wire carries it; raises on mistakes the server would reject anyway."""
    if not isinstance(event, str):
        raise TypeError("event must be a string, e.g. 'acme.order.created'")
    if not isinstance(resource, dict) or not resource.get(RESOURCE_ID):
        raise ValueError(f"resource needs a non-empty {RESOURCE_ID!r} label")
    for item in related or []:
        if not item.get(RESOURCE_ID) or not item.get(RESOURCE_ROLE):
            raise ValueError(f"each related resource needs {RESOURCE_ID!r} and {RESOURCE_ROLE!r}")
    if payload is not None and not isinstance(payload, dict):
        raise TypeError("payload must be a dict")
    occurred = _utc(occurred or datetime.now(UTC))
    return {
        "occurred": _iso(occurred),
        "event": event,
        "resource": dict(resource),
        "related": [dict(item) for item in related or []],
        "payload": payload or {},
        "id": str(id or uuid7()),
        "follows": _follows_id(follows, occurred),
    }


def _follows_id(follows, occurred: datetime) -> str | None:
    if follows is None:
        return None
    if isinstance(follows, dict):
        leader = follows.get("occurred")
        if leader:
            leader_at = datetime.fromisoformat(leader.replace("Z", "+00:00"))
            if abs(_utc(leader_at) - occurred) >= FOLLOWS_WINDOW:
                return None
        return str(follows["id"])
    return str(follows)


class Client:
    """A bounded queue of events and the thread that posts them in batches."""

    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        *,
        max_queue: int | None = None,
        timeout: float = 10.0,
    ):
        self.config = ClientConfig(api_url, token)
        self.max_queue = max_queue or int(os.environ.get("EVENTSITE_SDK_MAX_QUEUE", 100_000))
        self.timeout = timeout
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self._queue: deque[tuple[str, bytes]] = deque()
        self._in_flight = 0
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._warned_unconfigured = False
        self._closed = False
        self._stop = threading.Event()  # wakes a retry backoff when the client is closed
        self._last_full_warning = 0.0

    # --- caller side ----------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> dict[str, Any]:
        if not self.config.configured:
            if not self._warned_unconfigured:
                self._warned_unconfigured = True
                logger.warning(
                    "eventsite SDK is not configured: set EVENTSITE_API_URL and "
                    "EVENTSITE_API_TOKEN (or PREFECT_API_URL and PREFECT_API_AUTH_STRING); "
                    "events are not sent"
                )
            return event
        body = _dumps(event)  # here, so an unserialisable payload fails in the caller
        with self._lock:
            if self._closed:
                raise RuntimeError("this eventsite SDK client is closed")
            if len(self._queue) >= self.max_queue:
                self.dropped += 1
                now = time.monotonic()
                if now - self._last_full_warning > 10:
                    self._last_full_warning = now
                    logger.warning(
                        "eventsite SDK queue is full (%d events waiting for %s): dropping "
                        "new events (%d so far); is the server reachable?",
                        self.max_queue,
                        self.config.api_url,
                        self.dropped,
                    )
                return event
            self._queue.append((event["id"], body))
            self._ensure_thread()
            self._lock.notify_all()
        return event

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is sent (or given up); False if `timeout` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def close(self, timeout: float | None = 0) -> None:
        """Wait up to `timeout` seconds for the queue to drain, then stop and drop what is left."""
        self.flush(timeout)
        with self._lock:
            self._closed = True
            left = len(self._queue) + self._in_flight
            self._queue.clear()
            self._lock.notify_all()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        if left:
            logger.warning("eventsite SDK closed with %d events not sent", left)
        self._close()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._in_flight

    # --- sender thread --------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="eventsite-sdk", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                batch: list[tuple[str, bytes]] = []
                size = 2
                while self._queue and len(batch) < MAX_BATCH_EVENTS:
                    item_size = len(self._queue[0][1]) + 1
                    if batch and size + item_size > MAX_BATCH_BYTES:
                        break
                    batch.append(self._queue.popleft())
                    size += item_size
                self._in_flight = len(batch)
            try:
                self._send(batch)
            except Exception:  # never let the sender thread die with events queued
                logger.exception("eventsite SDK: dropping %d events after an error", len(batch))
            finally:
                with self._lock:
                    self._in_flight = 0
                    self._lock.notify_all()

    def _send(self, batch: list[tuple[str, bytes]]) -> None:
        backoff = 0.1
        while batch and not self._closed:
            body = b"[" + b",".join(item for _, item in batch) + b"]"
            try:
                status, data = self._post(body)
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                logger.info(
                    "eventsite SDK: %s unreachable (%s); retrying", self.config.api_url, exc
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if status < 300:
                self.sent += len(batch)
                return
            if status in RETRY_STATUSES:
                logger.info("eventsite SDK: server answered %d; retrying", status)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            batch = self._without_rejected(batch, status, data)

    def _without_rejected(self, batch, status: int, data: bytes) -> list[tuple[str, bytes]]:
        """After a 4xx: log what the server said; keep the events it did not object to.

        The REST API stores nothing from a batch with an invalid event and names each invalid
        one by index, so the others are sent again and the invalid ones are not.
        """
        try:
            answer = _loads(data)
        except ValueError:
            answer = {"detail": data[:500].decode(errors="replace")}
        errors = answer.get("errors") if isinstance(answer, dict) else None
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        bad = {e["index"] for e in errors or [] if isinstance(e, dict) and "index" in e}
        if not bad or status not in (413, 422):
            self.rejected += len(batch)
            logger.error(
                "eventsite SDK: server refused %d events (%d): %s", len(batch), status, detail
            )
            return []
        for index in sorted(bad):
            problems = "; ".join(
                f"{e.get('field') or 'event'}: {e.get('message')}"
                for e in errors
                if e.get("index") == index
            )
            logger.error(
                "eventsite SDK: event %s refused by the server (%d): %s",
                batch[index][0],
                status,
                problems,
            )
        self.rejected += len(bad)
        return [item for i, item in enumerate(batch) if i not in bad]

    def _post(self, body: bytes) -> tuple[int, bytes]:
        if self._connection is None:
            parts = urlsplit(self.config.api_url)
            factory = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            self._connection = factory(parts.netloc, timeout=self.timeout)
            self._path = parts.path.rstrip("/") + "/events"
        self._connection.request(
            "POST",
            self._path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": self.config.authorization,
                "User-Agent": "eventsite-sdk/0.1",
            },
        )
        response = self._connection.getresponse()
        return response.status, response.read()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


# --- the module-level client ------------------------------------------------------------------

_client: Client | None = None
_client_lock = threading.Lock()


def get_client() -> Client:
    """The process's client, created from the environment on first use."""
    global _client
    with _client_lock:
        if _client is None:
            _client = Client()
        return _client


def emit_event(
    event: str,
    resource: dict[str, str],
    *,
    related: list[dict[str, str]] | None = None,
    payload: dict[str, Any] | None = None,
    occurred: datetime | None = None,
    id: uuid.UUID | str | None = None,
    follows: dict[str, Any] | uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """Queue one event for sending and return it (as the wire carries it) straight away.

    `follows` is an earlier event (as returned here) or its id; like Prefect's client, an event
    is kept as `follows` only when the two occurred within 5 minutes of each other.
    """
    built = build_event(
        event,
        resource,
        related=related,
        payload=payload,
        occurred=occurred,
        id=id,
        follows=follows,
    )
    return get_client().emit(built)


def flush(timeout: float | None = None) -> bool:
    """Wait until the events emitted so far are sent; False if `timeout` seconds ran out."""
    with _client_lock:
        client = _client
    return True if client is None else client.flush(timeout)


def _flush_at_exit() -> None:
    with _client_lock:
        client = _client
    if client is None or not client.pending:
        return
    timeout = float(os.environ.get("EVENTSITE_SDK_EXIT_TIMEOUT", 30))
    if not client.flush(timeout):
        logger.error(
            "eventsite SDK: %d events were not sent before exit (server %s unreachable?)",
            client.pending,
            client.config.api_url,
        )


def _reset_after_fork() -> None:
    # A forked child has the parent's queue but not its thread: start over with a fresh client.
    global _client, _client_lock
    _client = None
    _client_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
