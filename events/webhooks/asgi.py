"""The ASGI fast path for `/hooks/<slug>`, used under `manage.py serve`.

It answers `/hooks/` before Django's ASGI handler: that handler builds a request and runs the
whole middleware chain and a view for each one, in a thread of its own (`eventsite.request_threads`:
one hop to a pooled thread; stock Django crossed about fifteen times and started a thread per
request), which caps a process at a few hundred requests per second.
`asgi_app` reads the body on the event loop, renders in a template worker process (through a
thread: `events.webhooks.render_workers`) and sends the database work to one thread that groups
concurrent requests into one lookup query and one transaction (group commit), which is what lets
it take well over 1,000 requests/s. The steps are `events.webhooks.receive`'s.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import weakref
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, connections
from django.http.request import split_domain_port, validate_host

from events.webhooks import verify
from events.webhooks.incoming import Incoming
from events.webhooks.models import Webhook
from events.webhooks.receive import (
    REPLAYED,
    SLUG_PATH,
    Outcome,
    Result,
    Write,
    admit,
    build_write,
    evaluate,
    for_webhook,
    max_body_bytes,
    response_for,
    slug_lookup,
    unknown_allowed,
    write_each,
)

logger = logging.getLogger(__name__)


class _DaemonThreadExecutor(Executor):
    """Runs submitted calls in order on one daemon thread.

    Not a ThreadPoolExecutor: the interpreter joins those at exit, and a batch can be waiting for
    the (stopped) event loop to take its broadcast when the server shuts down. Its write has
    committed by then, so letting the thread die with the process loses nothing.
    """

    def __init__(self, name: str):
        self.name = name
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self.thread.start()
        self.queue.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args, kwargs = self.queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)


# Lookups and writes each have one thread (and so one database connection) of their own, so a
# lookup never waits behind a commit; jobs from concurrent requests are run as one batch.
_LOOKUP_EXECUTOR = _DaemonThreadExecutor("webhook-lookup")
_WRITE_EXECUTOR = _DaemonThreadExecutor("webhook-write")
# Threads that wait for the template workers (and validate what they render), a few more than
# there are workers so that a free worker never waits for a thread.
_RENDER_EXECUTOR = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-render")
MAX_BATCH = 500
IDLE_CLOSE_SECONDS = 2.0


def _lookup_all(slugs: list[str]) -> list[Webhook | None]:
    found: dict[str, Webhook] = {}
    for webhook in Webhook.objects.filter(slug_lookup(set(slugs))):
        found[webhook.slug] = webhook
        if webhook.previous_slug and webhook.old_url_active:
            found.setdefault(webhook.previous_slug, webhook)
    return [found.get(slug) for slug in slugs]


def _write_all(writes: list[Write]) -> list[Exception | None]:
    try:
        return write_each(writes)
    except DatabaseError as exc:
        return [exc]


class _Batcher:
    """Collects jobs on the event loop and runs them in batches on one thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run, executor: Executor):
        self.loop = loop
        self.run = sync_to_async(run, thread_sensitive=False, executor=executor)
        self.executor = executor
        self.jobs: list[tuple[Any, asyncio.Future]] = []
        self.running = False
        self.idle_handle: asyncio.TimerHandle | None = None

    def submit(self, job: Any) -> asyncio.Future:
        future = self.loop.create_future()
        self.jobs.append((job, future))
        if not self.running:
            self.running = True
            if self.idle_handle:
                self.idle_handle.cancel()
            self.loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self.jobs:
                batch, self.jobs = self.jobs[:MAX_BATCH], self.jobs[MAX_BATCH:]
                try:
                    results = await self.run([job for job, _ in batch])
                except Exception as exc:  # the database is down: every job of the batch fails
                    logger.exception("webhook database batch failed")
                    results = [exc] * len(batch)
                if len(results) != len(batch):
                    results = [results[0]] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self.running = False
            # Let go of the connection when idle, so it is not held open between bursts.
            self.idle_handle = self.loop.call_later(IDLE_CLOSE_SECONDS, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not self.running and not self.jobs:
            self.loop.run_in_executor(self.executor, connections.close_all)


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[_Batcher, _Batcher]] = (
    weakref.WeakKeyDictionary()
)


def _batchers_for_loop() -> tuple[_Batcher, _Batcher]:
    loop = asyncio.get_running_loop()
    pair = _batchers.get(loop)
    if pair is None:
        pair = _batchers[loop] = (
            _Batcher(loop, _lookup_all, _LOOKUP_EXECUTOR),
            _Batcher(loop, _write_all, _WRITE_EXECUTOR),
        )
    return pair


async def handle_async(slug: str, incoming: Incoming) -> Result:
    """`handle` for the event loop: the template renders here, the database work is batched."""
    lookups, writes = _batchers_for_loop()
    webhook = await lookups.submit(slug)
    incoming = for_webhook(webhook, incoming)
    result, nonce = admit(webhook, incoming)
    # Only Stripe-style signatures need this write before accepting; rare, so not batched.
    claim = sync_to_async(verify.claim, thread_sensitive=False)
    if result is None and nonce is not None and not await claim(nonce):
        logger.warning("webhook %s refused a replayed signature", webhook.id)
        result = Result(401, Outcome.UNAUTHORIZED, REPLAYED)
    if result is None:
        # Never on the loop: the body and the template are the sender's (`render_workers`).
        result = await asyncio.get_running_loop().run_in_executor(
            _RENDER_EXECUTOR, evaluate, webhook, incoming
        )
    if webhook is None and not unknown_allowed():
        return result
    await writes.submit(build_write(webhook, slug, incoming, result))
    return result


def _host_allowed(headers: list[tuple[bytes, bytes]]) -> bool:
    host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


async def _send(send, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wants(scope: dict) -> str | None:
    """The slug when `scope` is a request `asgi_app` answers, else None (Django answers it)."""
    if scope.get("type") != "http":
        return None
    match = SLUG_PATH.match(scope.get("path", ""))
    return match["slug"] if match else None


async def asgi_app(scope: dict, receive, send) -> None:
    """Answer `/hooks/<slug>` without Django's request handling (see the module docstring)."""
    slug = wants(scope)
    if not _host_allowed(scope.get("headers", [])):
        await _send(send, 400, orjson.dumps({"detail": "Invalid Host header."}))
        return
    limit = max_body_bytes()
    chunks: list[bytes] = []
    size = 0
    truncated = False
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if not truncated:
            if size + len(chunk) > limit:
                chunks.append(chunk[: limit - size])
                truncated = True
            else:
                chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body"):
            break
    incoming = Incoming.build(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b"").decode("latin-1"),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        body=b"".join(chunks),
        truncated=truncated,
        source=(scope.get("client") or ("",))[0] or "",
    )
    try:
        result = await handle_async(slug, incoming)
    except Exception:
        logger.exception("webhook request to %s could not be stored", incoming.path)
        await _send(send, 503, orjson.dumps({"detail": "Temporarily unable to store; retry."}))
        return
    status, body = response_for(result)
    await _send(send, status, body)
