"""Tell live consumers (feed sockets, /api/events/out subscribers, the engine) about stored events.

Messages on the channel layer are notifications only: the stored log stays the source of truth,
so a lost message loses no data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "events"
MESSAGE_TYPE = "events.stored"
# Keep each channel-layer message small enough for Redis and for one consumer's queue slot.
CHUNK_BYTES = 256 * 1024


def broadcast_stored(events: Sequence) -> None:
    """Send stored events (`schema.Event`) to the `events` group, in order, in bounded chunks."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
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
    try:
        send = async_to_sync(layer.group_send)
        for chunk in chunks:
            send(GROUP, {"type": MESSAGE_TYPE, "events": chunk})
    except Exception:  # a notification failing must never fail the write that already committed
        logger.exception("broadcast of %d stored events failed", len(events))
