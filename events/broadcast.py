"""Tell live consumers (feed sockets, /api/events/out subscribers) about stored events.

Messages on the channel layer are notifications only: the stored log stays the source of truth,
so a lost message loses no data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "events"
MESSAGE_TYPE = "events.stored"
# Keep each channel-layer message small enough for Redis and for one consumer's queue slot.
CHUNK_BYTES = 256 * 1024

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


def _chunks(events: Sequence) -> list[list[dict]]:
    chunks: list[list[dict]] = [[]]
    size = 0
    for event in events:
        wire = event.to_wire()
        estimate = 400 + len(str(wire["payload"])) + len(str(wire["related"]))
        if chunks[-1] and size + estimate > CHUNK_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(wire)
        size += estimate
    return chunks


async def _send(layer, chunks: list[list[dict]]) -> None:
    try:
        for chunk in chunks:
            await layer.group_send(GROUP, {"type": MESSAGE_TYPE, "events": chunk})
    except Exception:  # a notification failing must never fail the write that already committed
        logger.exception("broadcast of %d stored events failed", sum(map(len, chunks)))


def broadcast_stored(events: Sequence) -> None:
    """Send stored events (`schema.Event`) to the `events` group, in order, in bounded chunks."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    chunks = _chunks(events)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        # Sync code called from inside a running loop: schedule on it, never block it.
        running.create_task(_send(layer, chunks))
    elif _server_loop is not None and _server_loop.is_running():
        asyncio.run_coroutine_threadsafe(_send(layer, chunks), _server_loop)
    else:
        # No server loop in this process (tests, management commands, `run_engine`).
        async_to_sync(_send)(layer, chunks)


class Membership:
    """A consumer's place in the `events` group, renewed before the channel layer expires it.

    Channel layers drop a group member after `group_expiry` (a day by default) so that crashed
    consumers do not collect messages forever; a feed left open over a weekend must not go quiet.
    """

    def __init__(self, layer, channel_name: str):
        self.layer = layer
        self.channel_name = channel_name
        self._renewal: asyncio.Task | None = None

    async def join(self) -> None:
        await self.layer.group_add(GROUP, self.channel_name)
        self._renewal = asyncio.create_task(
            self._renew(getattr(self.layer, "group_expiry", 86400) / 2)
        )

    async def leave(self) -> None:
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        await self.layer.group_discard(GROUP, self.channel_name)

    async def _renew(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.layer.group_add(GROUP, self.channel_name)
