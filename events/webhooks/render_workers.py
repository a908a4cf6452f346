"""Webhook templates render in worker processes, never in the server's own.

A sender controls the body a webhook's template renders, so parsing that body and rendering the
template (`render_event_data`) run in a child process (`python -c …render_workers.main()`).
The sandbox's limits (`events.templating`) stop what they can foresee; this is the backstop for
what they cannot:

- a worker that has not answered within `HARD_TIMEOUT` seconds is killed (SIGKILL) and replaced,
  which interrupts even one long C call (a regex, a huge format) that no Python check can;
- each worker caps its own address space (`RLIMIT_AS`, `EVENTSITE_TEMPLATE_WORKER_MEMORY_MB`
  above what it uses at rest), so a render fails with `MemoryError` instead of swelling the server;
- at most `EVENTSITE_TEMPLATE_WORKERS` renders run at once; the server's threads wait for a
  worker (`QUEUE_TIMEOUT`) and the event loop never does (`events.webhooks.asgi` hands `evaluate`
  to a thread).

With `EVENTSITE_TEMPLATE_WORKERS=0` templates render in the calling thread (the sandbox's limits
only), for environments that cannot start processes.

The protocol is a length-prefixed pickle each way over the worker's stdin/stdout; only the server
writes to a worker, and a worker only answers with strings and bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import queue
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from events import templating
from events.webhooks.incoming import BodyRefused, Incoming

# The sandbox's own deadline is `templating.DEFAULT_TIMEOUT`; this one is the kill.
HARD_TIMEOUT = 3.0
# How long a request waits for a free worker before it is answered 503.
QUEUE_TIMEOUT = 10.0
START_TIMEOUT = 60.0
_HEADER = struct.Struct("!I")
# Django is set up before this module is imported (it imports models); the worker inherits the
# server's environment, so its settings.
_WORKER_MAIN = "import django; django.setup(); from events.webhooks import render_workers; render_workers.main()"


@dataclass
class Rendered:
    """What a worker made of one request: `data` (the event as JSON) or the failure."""

    status: int  # 0: rendered; else the HTTP status of the refusal
    error: str = ""
    rendered: str = ""
    data: bytes = b""


def render_event_data(template: str, strict: bool, incoming: Incoming, max_output: int) -> Rendered:
    """Parse the body, render the template, read its JSON; fill in the payload when left out.

    Everything whose cost the sender controls happens here (in a worker)."""
    try:
        context = incoming.context()
    except BodyRefused as exc:
        return Rendered(413, str(exc))
    environment = templating.WEBHOOKS_STRICT if strict else templating.WEBHOOKS
    try:
        rendered = templating.render(
            template, context, environment=environment, max_output=max_output
        )
    except (templating.TemplateInvalid, templating.RenderFailed) as exc:
        return Rendered(400, f"Template error: {exc}")
    try:
        data = orjson.loads(rendered)
    except orjson.JSONDecodeError as exc:
        return Rendered(400, f"The template did not render valid JSON: {exc}", rendered)
    if not isinstance(data, dict):
        return Rendered(
            400, f"The template must render a JSON object, not {type(data).__name__}.", rendered
        )
    if data.get("payload") is None:
        data["payload"] = {
            "method": incoming.method,
            "headers": incoming.headers,
            "body": context["body"],
        }
    try:
        encoded = orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        return Rendered(400, f"Invalid event: {exc}", rendered)
    return Rendered(0, rendered=rendered, data=encoded)


def render_template(
    source: str, context: dict[str, Any], environment: str, max_output: int
) -> Rendered:
    """`templating.render` of any template (action templates): the text, or the failure."""
    try:
        text = templating.render(
            source, context, environment=ENVIRONMENTS[environment], max_output=max_output
        )
    except (templating.TemplateInvalid, templating.RenderFailed) as exc:
        return Rendered(400, str(exc))
    return Rendered(0, rendered=text)


ENVIRONMENTS = {"actions": templating.ACTIONS, "webhooks": templating.WEBHOOKS}
# What a worker may be asked to run: a job is (name, args).
JOBS = {"webhook": render_event_data, "template": render_template}


# --- the server's side -----------------------------------------------------------------------------


def _read_exactly(fd: int, size: int, deadline: float) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class _Worker:
    def __init__(self) -> None:
        path = [str(settings.BASE_DIR), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=settings.BASE_DIR,
        )
        self.ready = False

    def call(self, job: tuple, timeout: float) -> Rendered | None:
        """The worker's answer, or None when it did not answer in time (it is then killed)."""
        fd = self.process.stdout.fileno()
        if not self.ready:
            if _read_exactly(fd, 1, time.monotonic() + START_TIMEOUT) != b"R":
                self.kill()
                return None
            self.ready = True
        message = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.process.stdin.write(_HEADER.pack(len(message)) + message)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return None
        deadline = time.monotonic() + timeout
        header = _read_exactly(fd, _HEADER.size, deadline)
        body = header and _read_exactly(fd, _HEADER.unpack(header)[0], deadline)
        if body is None:
            self.kill()
            return None
        return Rendered(*pickle.loads(body))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


class WorkerPool:
    """At most `size` workers, started when first needed; a stuck one is killed and replaced."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self.slots = threading.BoundedSemaphore(size)

    def run(self, job: tuple, *, timeout: float = HARD_TIMEOUT) -> Rendered:
        if not self.slots.acquire(timeout=QUEUE_TIMEOUT):
            return Rendered(503, "Every template worker is busy; retry later.")
        try:
            try:
                worker = self.idle.get_nowait()
            except queue.Empty:
                worker = _Worker()
            reply = worker.call(job, timeout)
            if reply is None:
                return Rendered(
                    400, f"Template error: the render was stopped after {timeout:g} seconds."
                )
            self.idle.put(worker)
            return reply
        finally:
            self.slots.release()

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().kill()
            except queue.Empty:
                return


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def pool() -> WorkerPool | None:
    global _pool
    size = settings.EVENTSITE_TEMPLATE_WORKERS
    if size <= 0:
        return None
    with _pool_lock:
        if _pool is None or _pool.size != size:
            _pool = WorkerPool(size)
        return _pool


def run(name: str, *args: Any) -> Rendered:
    """`JOBS[name](*args)` in a worker (in this thread with `EVENTSITE_TEMPLATE_WORKERS=0`)."""
    workers = pool()
    if workers is None:
        return JOBS[name](*args)
    return workers.run((name, args))


def render(template: str, strict: bool, incoming: Incoming, max_output: int) -> Rendered:
    """`render_event_data` in a worker: a webhook request's event data, or the refusal."""
    return run("webhook", template, strict, incoming, max_output)


def render_isolated(
    source: str,
    context: dict[str, Any],
    *,
    environment: str = "actions",
    max_output: int = templating.DEFAULT_MAX_OUTPUT,
) -> str:
    """`templating.render` in a worker; raises `templating.RenderFailed` with the reason."""
    result = run("template", source, context, environment, max_output)
    if result.status:
        raise templating.RenderFailed(result.error.removeprefix("Template error: "))
    return result.rendered


# --- the worker's side -------------------------------------------------------------------------


def _limit_memory() -> None:
    extra = settings.EVENTSITE_TEMPLATE_WORKER_MEMORY_MB * 1024 * 1024
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, size + extra))


def main() -> None:
    """Serve render jobs on stdin/stdout until stdin closes (the server went away)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us; a ^C is for it
    jobs, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write on the protocol's pipe
    with contextlib.suppress(OSError, ValueError):
        _limit_memory()
    answers.write(b"R")
    answers.flush()
    while True:
        header = jobs.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        name, args = pickle.loads(jobs.read(_HEADER.unpack(header)[0]))
        try:
            reply = JOBS[name](*args)
        except MemoryError:
            reply = Rendered(400, "Template error: the template needed too much memory.")
        except Exception as exc:  # the worker outlives any one request
            reply = Rendered(400, f"Template error: {type(exc).__name__}: {exc}")
        message = pickle.dumps(dataclasses.astuple(reply), protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(_HEADER.pack(len(message)) + message)
        answers.flush()
