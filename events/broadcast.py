"""Wake the live readers (`events.live`, one per process) when events were stored.

A message on the channel layer says only that something was stored: the readers read the store,
so a lost or failed wake-up costs latency (their periodic read finds the events), never data.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "events"
MESSAGE_TYPE = "events.stored"
# Who sent a wake-up: readers in the storing process are woken directly (`add_waker`), so they
# skip the layer's copy of their own process's wake-ups.
ORIGIN = uuid.uuid4().hex
_wakers: set[Callable[[], None]] = set()


def add_waker(wake: Callable[[Sequence], None]) -> None:
    """Call `wake(events)` (from the committing thread) whenever this process stores events."""
    _wakers.add(wake)


def remove_waker(wake: Callable[[Sequence], None]) -> None:
    _wakers.discard(wake)


# The server's event loop, remembered by the ASGI app (`remember_loop`). Writes from any thread of
# that process (request threads, the engine, retention) hand their notification to it, so the
# in-memory layer is only ever touched from its own loop and no write waits for the send.
_server_loop: asyncio.AbstractEventLoop | None = None


def remember_loop() -> None:
    """Record the running loop as the server's (called from the ASGI app, in async code)."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def remember_loop_middleware(app):
    async def middleware(scope, receive, send):
        remember_loop()
        return await app(scope, receive, send)

    return middleware


async def _send(layer, count: int) -> None:
    try:
        await layer.group_send(GROUP, {"type": MESSAGE_TYPE, "count": count, "origin": ORIGIN})
    except Exception:  # a wake-up failing must never fail the write that already committed
        # Nothing is lost: live sockets find the events in the store on their next read.
        logger.warning("wake-up for %d stored events failed", count, exc_info=True)


def broadcast_stored(events: Sequence) -> None:
    """Wake the live readers of every process (`events.live`): events were stored."""
    if not events:
        return
    for wake in list(_wakers):  # this process's readers, without a hop through the layer
        try:
            wake(events)
        except Exception:  # a reader whose loop is gone; the write has committed regardless
            logger.debug("a live reader could not be woken", exc_info=True)
    layer = get_channel_layer()
    if layer is None:
        return
    count = len(events)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        # Sync code called from inside a running loop: schedule on it, never block it.
        running.create_task(_send(layer, count))
    elif _server_loop is not None and _server_loop.is_running():
        asyncio.run_coroutine_threadsafe(_send(layer, count), _server_loop)
    else:
        # No server loop in this process (tests, management commands, `run_engine`).
        async_to_sync(_send)(layer, count)
