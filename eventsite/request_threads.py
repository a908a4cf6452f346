"""Django's ASGI handler, with each request's synchronous part run in one hop on a pooled thread.

Stock `ASGIHandler` loads the middleware in async mode. Our chain is synchronous (WhiteNoise and
our own middleware are sync-only, and Django's `MiddlewareMixin` runs every `process_*` method of
an async-capable middleware through `sync_to_async`), so one request crossed between the event
loop and a thread about fifteen times: `request_started`, each `process_request` /
`process_view` / `process_response`, the sync islands around WhiteNoise, the view, and
`response.close()`. Each crossing is a future, a context copy and two thread wake-ups (80 µs on a
machine measured by `bench.machine`), and `ThreadSensitiveContext()` started a new thread for
every request. A health check cost 4–5 ms there, most of it hand-offs.

Here the middleware is loaded in sync mode, as under WSGI, and a request crosses once: its thread
sends `request_started`, runs the whole chain and the view, and closes a non-streaming response
(`request_finished`), then the loop sends the bytes. The thread is taken from a pool of
single-thread executors and bound to the request's `ThreadSensitiveContext` (`RequestContext`),
so every thread-sensitive `sync_to_async` of the request (a streamed body's database reads, its
close) still runs on the thread that holds the request's database connection, as before. What
Django's handler does besides (reading the body, a disconnect cancelling the response, file
responses' block size, a streamed body's close) is kept; the code below mirrors its `handle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

# Idle request threads kept for the next requests; a burst beyond this starts more, and they
# end when the burst is over.
IDLE_THREADS = 16
# On SQLite, this many request threads keep their database connection from one request to the
# next (each connection may cache up to 16 MB of pages: `PRAGMA cache_size`), for at most
# KEEP_SECONDS; the other threads open one per request, as Django does.
KEEPING_THREADS = 4
KEEP_SECONDS = 300.0


class RequestThread(ThreadPoolExecutor):
    """One thread that serves one request at a time; it counts the calls it has not finished.

    With `keeps`, the thread keeps its SQLite connection between requests (`lend`, `keep`): a
    request's new connection cost 1-2.5 ms of CPU at 1M (`bench.page_cpu --keep-connection`),
    opening the file, registering Django's SQL functions, and starting with an empty page cache.
    The connection never leaves its thread (Django's thread check stays on)."""

    def __init__(self, *, keeps: bool = False) -> None:
        super().__init__(max_workers=1, thread_name_prefix="eventsite-request")
        self.unfinished = 0
        self._count = threading.Lock()  # submitted on the loop, finished on the thread
        self.keeps = keeps
        self.kept = None  # the thread's DatabaseWrapper, between requests (used on it only)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._count:
            self.unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future) -> None:
        with self._count:
            self.unfinished -= 1

    def lend(self) -> None:
        """On the thread, before a request: its kept connection becomes the request's."""
        if not self.keeps:
            return
        if self.kept is None:
            self.kept = connections.create_connection(DEFAULT_DB_ALIAS)
            self.kept.kept_by_request_thread = True
        connections[DEFAULT_DB_ALIAS] = self.kept

    def keep(self) -> None:
        """On the thread, after a request (its `request_finished` sent): the connection is taken
        out of the request's context, so that nothing the request left behind (work handed to
        the loop runs in a copy of the context) reaches it, and kept for the next request. One
        Django would not have reused (in a transaction, errors, past KEEP_SECONDS) is closed."""
        if not self.keeps or self.kept is None:
            return
        with contextlib.suppress(AttributeError):
            del connections[DEFAULT_DB_ALIAS]
        # Django's own test, as `request_finished` ran it: closed when its autocommit is not the
        # settings' (a transaction left open), after errors that left it unusable, or when old.
        self.kept.close_if_unusable_or_obsolete()

    def forget(self) -> None:
        """On the thread, before it ends: close the kept connection."""
        if self.kept is not None:
            self.kept.close()
            self.kept = None


@receiver(connection_created)
def _kept_open(sender, connection, **kwargs) -> None:
    """A request thread's kept connection is not closed at the end of each request (Django's
    `CONN_MAX_AGE` is 0: `request_finished` would close it), only past KEEP_SECONDS."""
    if getattr(connection, "kept_by_request_thread", False):
        connection.close_at = time.monotonic() + KEEP_SECONDS


class RequestContext(ThreadSensitiveContext):
    """asgiref's per-request context (Django's handler enters one per request), whose
    thread-sensitive calls run on `thread`, which goes back to the pool afterwards.

    Not `ThreadSensitiveContext(executor=…)`: that one refuses thread-sensitive calls after it
    exits, and work the request hands to the loop (`loop.call_soon_threadsafe` from its thread:
    the live tail's waker, a broadcast) runs in a copy of the request's context and may outlive
    it. Here, as under Django's own handler, such a late call gets a thread of its own.
    """

    def __init__(self, thread: RequestThread) -> None:
        super().__init__()
        self.thread = thread

    async def __aenter__(self):
        await super().__aenter__()
        SyncToAsync.context_to_thread_executor[self] = self.thread
        return self

    async def __aexit__(self, exc, value, tb):
        # Taken back before the stock exit, which would shut the thread down.
        SyncToAsync.context_to_thread_executor.pop(self, None)
        return await super().__aexit__(exc, value, tb)


class RequestThreads:
    """The pool: a request takes a thread and gives it back when its response is sent."""

    def __init__(self, *, idle: int = IDLE_THREADS, keeping: int | None = None) -> None:
        self.idle_limit = idle
        self._idle: list[RequestThread] = []
        self._lock = threading.Lock()  # the loop takes and gives; a test may run several loops
        if keeping is None:
            sqlite = connections.settings[DEFAULT_DB_ALIAS]["ENGINE"].endswith("sqlite3")
            keeping = KEEPING_THREADS if sqlite else 0  # PostgreSQL has its pool
        self.keeping_limit = keeping
        self.keeping = 0  # live threads that keep a connection

    def take(self) -> RequestThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            keeps = self.keeping < self.keeping_limit
            self.keeping += keeps
        return RequestThread(keeps=keeps)

    def give(self, thread: RequestThread) -> None:
        # A request cancelled while its view ran leaves the thread busy: it is not reused, so
        # no later request waits behind that view.
        if thread.unfinished == 0:
            with self._lock:
                if len(self._idle) < self.idle_limit:
                    self._idle.append(thread)
                    return
        with self._lock:
            self.keeping -= thread.keeps
        thread.submit(thread.forget)  # after what it still runs; then the thread ends
        thread.shutdown(wait=False)


class OneHopASGIHandler(ASGIHandler):
    """Django's ASGI handler; the request's middleware chain and view run in one thread hop."""

    def __init__(self, *, threads: RequestThreads | None = None) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.threads = threads or RequestThreads()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        # The thread is taken once the body is in: a client slow to send it holds none.
        thread = self.threads.take()
        try:
            async with RequestContext(thread):
                await self._answer(scope, receive, send, body_file, thread)
        finally:
            self.threads.give(thread)

    async def _answer(self, scope, receive, send, body_file, thread: RequestThread):
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await sync_to_async(self._started_and_closed)(scope, error_response, thread)
            return

        made: list[HttpResponseBase] = []

        async def process_request(request, send):
            response = await sync_to_async(self._respond)(scope, request, made, thread)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away meanwhile
                await self.send_response(response, send)
            return response

        # As Django's handler: a disconnect while the response is made or sent cancels it.
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            # Cancelled while its thread made the response. The thread closes a plain response
            # itself; a streamed one is closed by the next call on the same thread, after it.
            await sync_to_async(self._close_unsent)(made, thread)
        else:
            if response.streaming:
                await sync_to_async(self._close_streamed)(response, thread)
        body_file.close()

    def _respond(
        self, scope, request, made: list[HttpResponseBase], thread: RequestThread
    ) -> HttpResponseBase:
        """The request's synchronous part, in its thread: the signals, the chain, the view."""
        thread.lend()
        signals.request_started.send(sender=self.__class__, scope=scope)
        response = self.get_response(request)
        made.append(response)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if not response.streaming:
            # The body is bytes already: close now (`request_finished`: the database connection
            # goes back) rather than cross to this thread again after sending.
            response.close()
            thread.keep()
        return response

    def _close_unsent(self, made: list[HttpResponseBase], thread: RequestThread) -> None:
        for response in made:
            if response.streaming:
                response.close()
        thread.keep()

    def _close_streamed(self, response: HttpResponseBase, thread: RequestThread) -> None:
        response.close()
        thread.keep()

    def _started_and_closed(self, scope, response: HttpResponseBase, thread: RequestThread) -> None:
        thread.lend()
        signals.request_started.send(sender=self.__class__, scope=scope)
        response._handler_class = self.__class__
        response.close()
        thread.keep()
