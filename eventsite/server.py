"""Daphne, adjusted for event streams: close reasons, flow control both ways, graceful drain,
and cheap fan-out.

Stock Daphne 4.2 (through autobahn) drops the `reason` of an ASGI `websocket.close` and refuses
protocol close codes such as 1008, which the Prefect protocol needs ("Invalid token"). Its
per-connection input queue is unbounded, so a fast sender could fill memory faster than events
are written; its `send` never waits, so a subscriber that stops reading would grow the write
buffer forever. And at shutdown it cancels applications while sockets are still being read, so
frames whose ping a client already saw answered could be lost. This subclass fixes the four.

Fan-out. One live event goes to every subscribed socket of the process as the same text. Through
Daphne and autobahn each socket's send costs a task wake-up, a trip through the consumer's
`send`, `handle_reply`, UTF-8 encoding and framing (with autobahn building its debug log
arguments even when debug logging is off): about 30 µs per socket, so 500 subscribers took
~15 ms per event. Here a text message on an open socket with no extension negotiated is framed
by us (RFC 6455 §5.2: a server's frames are unmasked, so the frame of one text is the same bytes
for every socket, built once) and written straight to the transport; and `scope["extensions"]
["eventsite.send_texts_now"]` lets a consumer write such frames synchronously, from the live
reader's own delivery loop, while it has nothing queued (`events.live.Subscription.take`): one
`send` per socket as the loop reaches it, with no task wake-up and no scheduled callback (the
whole path is ~3 µs of Python per socket besides the `send` itself).
Anything else (binary, compression, a full write buffer, a closing socket) takes Daphne's path.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import struct
from collections.abc import Sequence
from functools import partial

from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer

from events.live import SEND_NOW_EXTENSION

logger = logging.getLogger(__name__)

# Stop reading a websocket when this many frames wait for the application; resume below LOW.
INPUT_HIGH_WATER = 2_000
INPUT_LOW_WATER = 500
# `send` on a websocket waits while the socket's write buffer holds more than this many bytes,
# so a consumer's own bounded queue fills up and it can tell a slow reader apart.
OUTPUT_HIGH_WATER = 1024 * 1024
OUTPUT_POLL_SECONDS = 0.005
# Frames written to one websocket during a turn of the loop go out in one send, up to this size.
COALESCE_BYTES = 64 * 1024
MAX_CLOSE_REASON_BYTES = 123
CLOSE_HANDSHAKE_TIMEOUT = 10.0  # RFC 6455: a control frame payload is at most 125 bytes
# Frames of the texts sent most recently, kept to reuse for the next sockets sent the same text.
FRAME_MEMO_SIZE = 256
FRAME_MEMO_MAX_BYTES = 64 * 1024


def text_frame(text: str) -> bytes:
    """`text` as one unmasked, unfragmented, uncompressed websocket text frame (RFC 6455 §5.2):
    the bytes autobahn writes for a server's text message when no extension was negotiated."""
    payload = text.encode()
    size = len(payload)
    if size <= 125:
        head = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


_frames: dict[int, tuple[str, bytes]] = {}


def _frame_of(text: str) -> bytes:
    """`text_frame(text)`, built once for a text object sent to many sockets in a row (a live
    event's frame is one cached string); the memo holds the text, so its id is not reused."""
    key = id(text)
    found = _frames.get(key)
    if found is not None and found[0] is text:
        return found[1]
    frame = text_frame(text)
    if len(frame) <= FRAME_MEMO_MAX_BYTES:
        _frames[key] = (text, frame)
        if len(_frames) > FRAME_MEMO_SIZE:
            del _frames[next(iter(_frames))]
    return frame


def _buffered_bytes(transport) -> int:
    """Bytes queued in a Twisted transport's write buffer (0 when it keeps none we can read)."""
    data = getattr(transport, "dataBuffer", b"")
    return len(data) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


class _Writer:
    """A websocket's transport, written without Twisted's buffer while nothing waits in it.

    Twisted's `write` always buffers and registers the socket for writability, sending on the
    next turn of the loop and unregistering after: two epoll_ctl calls per frame, a fifth of
    `serve`'s CPU with 500 live subscribers. Here, while nothing waits in Twisted's buffer:
    - `write` (the transport's `write`, what Daphne and autobahn call) joins the frames written
      during one turn of the loop (a subscriber with several events waiting gets several) and
      sends them with one `send` at the end of the turn, or at once past `COALESCE_BYTES`, so
      flow control still sees a full buffer;
    - `send_now` sends at once, in the caller's own loop: the live fan-out writes each socket's
      frame as it goes, so the first sockets' frames are on the wire before the loop reaches
      the last ones, and no socket costs a scheduled callback.
    Order is kept (anything already pending or buffered goes first, through the same path), and
    partial sends and errors are left to Twisted (what a send leaves over goes to its buffer).
    """

    __slots__ = (
        "transport",
        "socket",
        "loop",
        "buffered_write",
        "lose_connection",
        "pending",
        "size",
    )

    def __init__(self, transport) -> None:
        self.transport = transport
        self.loop = asyncio.get_event_loop()
        self.socket = transport.socket
        self.buffered_write = transport.write
        self.lose_connection = transport.loseConnection
        self.pending: list[bytes] = []
        self.size = 0

    @classmethod
    def install(cls, transport) -> _Writer | None:
        """Take over `transport`'s writes (not under TLS, or a transport that is no TCP one)."""
        if getattr(transport, "TLS", False) or not hasattr(transport, "socket"):
            return None
        writer = cls(transport)
        transport.write = writer.write
        transport.loseConnection = writer.lose
        return writer

    def usable(self) -> bool:
        transport = self.transport
        return (
            transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
            and not _buffered_bytes(transport)  # nothing queued: sending now keeps the order
        )

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self.pending:
            if not self.usable():
                self.buffered_write(data)
                return
            self.loop.call_soon(self.flush)
        self.pending.append(data)
        self.size += len(data)
        if self.size >= COALESCE_BYTES:
            self.flush()

    def send_now(self, data: bytes, buffered: int) -> None:
        """Send at once; `buffered` is `_buffered_bytes(transport)`, read by the caller."""
        transport = self.transport
        if (
            buffered
            or self.pending
            or not transport.connected
            or transport.disconnecting
            or transport._writeDisconnected
        ):
            self.write(data)
        else:
            self._send(data)

    def flush(self) -> None:
        if not self.pending:
            return
        data = b"".join(self.pending)
        self.pending.clear()
        self.size = 0
        if self.usable():
            self._send(data)
        else:
            self.buffered_write(data)

    def _send(self, data: bytes) -> None:
        # Twisted's `writeSomeData`, minus its slice and its EINTR loop (Python retries those).
        try:
            written = self.socket.send(data)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.ENOBUFS):
                return  # the connection is lost: Twisted's reader reports it
            written = 0
        if written < len(data):
            self.buffered_write(data[written:])

    def lose(self, *args, **kwargs):
        self.flush()  # a close frame written this turn goes out before the connection ends
        return self.lose_connection(*args, **kwargs)


class _FlowControlledQueue(asyncio.Queue):
    """A websocket's input queue that pauses reading the socket while it is too full."""

    def __init__(self, protocol: WebSocketProtocol):
        super().__init__()
        self._protocol = protocol
        self._paused = False
        self._held = False

    def hold(self) -> None:
        """Stop reading the socket for good (shutdown): draining the queue must not resume it."""
        self._held = True
        self._pause()

    def _pause(self) -> None:
        transport = getattr(self._protocol, "transport", None)
        if transport is not None and not self._paused:
            transport.pauseProducing()
            self._paused = True

    def put_nowait(self, item) -> None:
        super().put_nowait(item)
        if self.qsize() >= INPUT_HIGH_WATER:
            self._pause()

    def get_nowait(self):
        item = super().get_nowait()
        if self._paused and not self._held and self.qsize() <= INPUT_LOW_WATER:
            self._paused = False
            transport = getattr(self._protocol, "transport", None)
            if transport is not None:
                transport.resumeProducing()
        return item


class EventsiteServer(Server):
    def create_application(self, protocol, scope):
        if not isinstance(protocol, WebSocketProtocol):
            return super().create_application(protocol, scope)
        # Daphne's own body, with the bounded queue in place of a plain asyncio.Queue.
        assert "application_instance" not in self.connections[protocol]
        input_queue = _FlowControlledQueue(protocol)
        transport = getattr(protocol, "transport", None)
        writer = _Writer.install(transport) if transport is not None else None
        scope.setdefault("asgi", {"version": "3.0"})
        if writer is not None:
            scope["extensions"] = {
                **(scope.get("extensions") or {}),
                SEND_NOW_EXTENSION: partial(
                    self.send_texts_now, protocol, self.connections[protocol], writer
                ),
            }
        application_instance = self.application(
            scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        self.connections[protocol]["input_queue"] = input_queue
        return input_queue

    async def handle_reply(self, protocol, message):
        if (
            isinstance(protocol, WebSocketProtocol)
            and message.get("type") == "websocket.close"
            and protocol.state != protocol.STATE_CONNECTING  # before accept: Daphne's 403
        ):
            if protocol.state == protocol.STATE_OPEN and not self._gone(protocol):
                reason = (message.get("reason") or "").encode()[:MAX_CLOSE_REASON_BYTES]
                # The close frame queues behind what is still unsent (up to a few MB for a
                # subscriber closed for reading too slowly); autobahn's default 1 s wait for the
                # reply would drop the connection, and the close frame with it, before it is read.
                protocol.closeHandshakeTimeout = max(
                    protocol.closeHandshakeTimeout or 0, CLOSE_HANDSHAKE_TIMEOUT
                )
                # sendCloseFrame, not sendClose: autobahn's public API refuses codes like 1008.
                protocol.sendCloseFrame(code=message.get("code") or 1000, reasonUtf8=reason)
            return
        text = message.get("text") if message.get("type") == "websocket.send" else None
        if not (
            isinstance(protocol, WebSocketProtocol)
            and isinstance(text, str)
            and text
            and not message.get("bytes")
            and self.send_text_now(protocol, text)
        ):
            await super().handle_reply(protocol, message)
        if isinstance(protocol, WebSocketProtocol) and message.get("type") == "websocket.send":
            transport = getattr(protocol, "transport", None)
            while (
                transport is not None
                and _buffered_bytes(transport) > OUTPUT_HIGH_WATER
                and not self._gone(protocol)
            ):
                await asyncio.sleep(OUTPUT_POLL_SECONDS)

    def send_text_now(self, protocol: WebSocketProtocol, text: str) -> bool:
        """Write `text` to an open websocket at once, framed by us; False when it must take
        Daphne's path instead (not open, an extension negotiated, autobahn holding frames of its
        own, a write buffer over `OUTPUT_HIGH_WATER`, a message over Daphne's size limit)."""
        transport = getattr(protocol, "transport", None)
        if (
            transport is None
            or protocol.state != protocol.STATE_OPEN
            or protocol._perMessageCompress is not None
            or protocol.send_queue
            or self._gone(protocol)
            or _buffered_bytes(transport) > OUTPUT_HIGH_WATER
        ):
            return False
        frame = _frame_of(text)
        if 0 < (protocol.maxMessagePayloadSize or 0) < len(frame):
            return False
        transport.write(frame)
        return True

    def send_texts_now(
        self, protocol: WebSocketProtocol, details: dict, writer: _Writer, texts: Sequence[str]
    ) -> bool:
        """Write `texts` to an open websocket at once, in the caller's own loop (the live
        fan-out), as one send of our frames; False when they must take Daphne's path instead
        (as for `send_text_now`). `details` is Daphne's record of the connection."""
        buffered = _buffered_bytes(writer.transport)
        if (
            protocol.state != protocol.STATE_OPEN
            or protocol._perMessageCompress is not None
            or protocol.send_queue
            or details.get("disconnected")
            or buffered > OUTPUT_HIGH_WATER
        ):
            return False
        limit = protocol.maxMessagePayloadSize or 0
        if len(texts) == 1:
            data = _frame_of(texts[0])
            if 0 < limit < len(data):
                return False
        else:
            frames = [_frame_of(text) for text in texts]
            if limit and max(map(len, frames)) > limit:
                return False
            data = b"".join(frames)
        writer.send_now(data, buffered)
        return True

    def _gone(self, protocol) -> bool:
        return protocol not in self.connections or bool(
            self.connections[protocol].get("disconnected")
        )

    def kill_all_applications(self):
        """Cancel every application and wait for all of them before the reactor stops.

        Daphne's own version waits with a plain `gather`, which finishes as soon as the first
        application ends cancelled, so an ingest socket still writing what it received (its
        commit hooks need this event loop) would be cut off. Sockets stop being read first:
        nothing new arrives, and no ping is answered, while the applications finish.
        """
        for details in self.connections.values():
            if isinstance(details.get("input_queue"), _FlowControlledQueue):
                details["input_queue"].hold()
        wait_for = []
        for details in self.connections.values():
            instance = details.get("application_instance")
            if instance is not None and not instance.done():
                instance.cancel()
                wait_for.append(instance)
        logger.info("Stopping %d application instances", len(wait_for))
        waiting = defer.Deferred.fromFuture(asyncio.gather(*wait_for, return_exceptions=True))
        waiting.addErrback(lambda _: None)
        return waiting
