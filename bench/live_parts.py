"""The processes of the live benchmarks: subscribers and senders, each a separate process.

    python -m bench.live_parts subscribe KIND URL SECRET COUNT PREFIX [PREFECT_COUNT [CLIENT]]
    python -m bench.live_parts send KIND BASE_URL TOKEN PREFIX COUNT INTERVAL
    python -m bench.live_parts stall URL SECRET PREFIX

Times are `time.monotonic()`, one clock for every process on the machine (Linux CLOCK_MONOTONIC).

subscribe: opens COUNT sockets — KIND `out`: `/api/events/out` with Prefect's protocol (auth,
then a filter on PREFIX with the `occurred` window Prefect's own subscriber sends), of which
PREFECT_COUNT are Prefect 3.9.1's own `get_events_subscriber` (needs PREFECT_API_URL and
PREFECT_API_AUTH_STRING); KIND `feed`: the feed page's `/ws/feed/` socket with the session
cookie SECRET and `?event=PREFIX*`. CLIENT `lean` (what `bench.live` uses by default) opens the raw
sockets with `LeanSocket`, which times each frame as it comes off the socket and reads it later;
`websockets` (the default here) with the websockets library. Prints `CONNECTED`, then `READY`
once every socket has received an event (the driver posts warm-up events until then), then
reads one line `IDS <json list>` from stdin and waits until every socket has every one of those
ids (or `BENCH_LIVE_WAIT` seconds, default 30, pass), and prints one JSON line:
`{"arrivals": [[socket, kind, id, t], ...], "closed": [...]}`.

send: sends COUNT events named `PREFIX tick`, one every INTERVAL seconds on a fixed schedule,
timing `t0` just before the send call (and `t1` just after it returns) — KIND `prefect`: Prefect's
`emit_event` (its worker thread and websocket; needs PREFECT_* env); `sdk`: eventsite's SDK
`events.client.emit_event` (its thread, batched POSTs; needs EVENTSITE_API_URL and _TOKEN); `ws`:
one raw websocket on `/api/events/in`, one frame per event; `rest`: one `POST /api/events` per
event. Three warm-up events outside PREFIX go first, so connection set-up is not measured.
Prints one JSON line `{"sent": [[id, t0, t1], ...]}`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

ROW_ID = re.compile(r'id="ev-([0-9a-f-]{36})"')


def wire_event(name: str, event_id: str, i: int) -> dict:
    return {
        "occurred": datetime.now(UTC).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": f"bench.live.{i % 10}", "acme.region": "eu-west"},
        "related": [
            {"prefect.resource.id": "acme.customer.7", "prefect.resource.role": "customer"}
        ],
        "payload": {"i": i},
        "id": event_id,
    }


# --- subscribers -----------------------------------------------------------------------------------


class Subscribers:
    def __init__(self, count: int):
        self.arrivals: list[tuple[int, str, str, float]] = []
        self.seen: list[set[str]] = [set() for _ in range(count)]
        self.closed: list[str] = []
        self.connected = 0
        self.gate = asyncio.Semaphore(25)  # at most 25 handshakes in flight
        # Lean sockets' messages, with their arrival times, not yet read (`drain`).
        self.raw: list[tuple[int, bytes, float, float]] = []

    def mark_connected(self) -> None:
        self.connected += 1
        self.gate.release()

    def arrived(
        self,
        index: int,
        kind: str,
        event_id: str,
        received: str | None = None,
        at: float | None = None,
        wall: float | None = None,
    ) -> None:
        # With the event's `received` stamp (the server's clock just before its commit, same
        # machine): stored → arrival, the live-delivery half of send → arrival.
        stored_ms = None
        if received:
            stamp = datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp()
            stored_ms = ((wall or time.time()) - stamp) * 1000
        self.arrivals.append((index, kind, event_id, at or time.monotonic(), stored_ms))
        self.seen[index].add(event_id)

    def drain(self) -> None:
        """Read the lean sockets' messages that arrived since the last call (timed already)."""
        import orjson

        raw, self.raw = self.raw, []
        for index, message, at, wall in raw:
            data = orjson.loads(message)
            if data.get("type") == "event":
                event = data["event"]
                self.arrived(index, "raw", event["id"], event.get("received"), at, wall)
            elif data.get("type") == "rows":
                for event_id in ROW_ID.findall(data.get("html", "")):
                    self.arrived(index, "feed", event_id, None, at, wall)


def out_filter(prefix: str) -> dict:
    """The filter message Prefect's own subscriber sends: Prefect's server needs `occurred.until`
    in the future (its default is the moment the filter is read, so no later event would match)."""
    now = datetime.now(UTC)
    occurred = {
        "since": (now - timedelta(minutes=1)).isoformat(),
        "until": (now + timedelta(days=365)).isoformat(),
    }
    return {"type": "filter", "filter": {"event": {"prefix": [prefix]}, "occurred": occurred}}


async def out_socket(url: str, token: str, prefix: str, index: int, subs: Subscribers) -> None:
    import orjson
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=["prefect"], max_size=None, open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "auth", "token": f"bench:{token}"}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "auth_success", reply
        await ws.send(json.dumps(out_filter(prefix)))
        subs.mark_connected()
        try:
            async for message in ws:
                data = orjson.loads(message)
                if data.get("type") == "event":
                    event = data["event"]
                    subs.arrived(index, "raw", event["id"], event.get("received"))
        except Exception as exc:  # a close with a reason is a figure, not a crash
            subs.closed.append(f"{index}: {exc!r}")
            return
    if ws.close_code not in (None, 1000):
        subs.closed.append(f"{index}: closed {ws.close_code} {ws.close_reason!r}")


async def prefect_socket(prefix: str, index: int, subs: Subscribers) -> None:
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    flt = EventFilter(event=EventNameFilter(prefix=[prefix]))
    try:
        async with get_events_subscriber(filter=flt) as subscriber:
            subs.mark_connected()
            async for event in subscriber:
                subs.arrived(index, "prefect", str(event.id))
    except Exception as exc:
        subs.closed.append(f"{index} (prefect): {exc!r}")


async def feed_socket(url: str, session: str, index: int, subs: Subscribers, origin: str) -> None:
    from websockets.asyncio.client import connect

    headers = {"Cookie": f"sessionid={session}", "Origin": origin}
    async with connect(url, additional_headers=headers, max_size=None, open_timeout=60) as ws:
        subs.mark_connected()
        try:
            async for message in ws:
                html = json.loads(message).get("html", "")
                for event_id in ROW_ID.findall(html):
                    subs.arrived(index, "feed", event_id)
        except Exception as exc:
            subs.closed.append(f"{index}: {exc!r}")
            return
    if ws.close_code not in (None, 1000):
        subs.closed.append(f"{index}: closed {ws.close_code} {ws.close_reason!r}")


# --- a lean websocket client ----------------------------------------------------------------------


class LeanSocket(asyncio.BufferedProtocol):
    """A websocket client that only times frames as they come off the socket (`--client lean`).

    Per read it takes the clock once and cuts the bytes into frames; what a frame says is read
    later, off the path of the next frame (`Subscribers.drain`). Hundreds of sockets through the
    `websockets` library cost the subscriber processes more CPU than `serve` spends sending to
    them, on the same two cores; this measures arrival on the socket with a fraction of that.
    Server frames are unmasked (RFC 6455 §5.1); a ping is answered; a close frame is recorded.
    """

    def __init__(self, index: int, subs: Subscribers, request: bytes, *, greeting: bool):
        self.index, self.subs, self.request = index, subs, request
        self.buffer = bytearray(256 * 1024)
        self.view = memoryview(self.buffer)
        self.data = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.opened = asyncio.get_running_loop().create_future()
        # The first message (`auth_success`) is read by the opener, not timed.
        self.first = asyncio.get_running_loop().create_future()
        if not greeting:
            self.first.set_result(b"")
        self.fragments: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        at, wall = time.monotonic(), time.time()
        data = self.data
        data += self.view[:nbytes]
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(data[: data.find(b"\r\n")])
            del data[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(RuntimeError(status.decode(errors="replace")))
                return
            self.upgraded = True
            self.opened.set_result(None)
        start = 0
        size = len(data)
        while size - start >= 2:
            b0, b1 = data[start], data[start + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - start < 4:
                    break
                length, head = int.from_bytes(data[start + 2 : start + 4], "big"), 4
            elif length == 127:
                if size - start < 10:
                    break
                length, head = int.from_bytes(data[start + 2 : start + 10], "big"), 10
            if size - start < head + length:
                break
            payload = bytes(data[start + head : start + head + length])
            start += head + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload, at, wall)
        del data[:start]

    def _frame(self, fin: int, opcode: int, payload: bytes, at: float, wall: float) -> None:
        if opcode in (0, 1, 2):
            self.fragments.append(payload)
            if not fin:
                return
            message = b"".join(self.fragments)
            self.fragments = []
            if not self.first.done():
                self.first.set_result(message)
                return
            self.subs.raw.append((self.index, message, at, wall))
        elif opcode == 8:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
                self.close_reason = payload[2:].decode(errors="replace")
            self.send(payload[:2], opcode=8)
        elif opcode == 9:
            self.send(payload, opcode=10)

    def send(self, payload: bytes, opcode: int = 1) -> None:
        """One masked client frame (RFC 6455 §5.3)."""
        mask = os.urandom(4)
        size = len(payload)
        if size <= 125:
            head = bytes([0x80 | opcode, 0x80 | size])
        elif size <= 0xFFFF:
            head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + mask + masked)

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.first.done():
            self.first.set_exception(exc or ConnectionError("closed"))
        if self.close_code not in (None, 1000):
            self.subs.closed.append(f"{self.index}: closed {self.close_code} {self.close_reason!r}")
        elif exc is not None:
            self.subs.closed.append(f"{self.index}: {exc!r}")
        if not self.lost.done():
            self.lost.set_result(None)


async def lean_socket(
    url: str,
    headers: dict[str, str],
    index: int,
    subs: Subscribers,
    *,
    subprotocol: str | None,
    greeting: bool,
) -> LeanSocket:
    """Open a `LeanSocket` (the upgrade request by hand) and wait for the server's 101."""
    split = urlsplit(url)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {split.path}{'?' + split.query if split.query else ''} HTTP/1.1",
        f"Host: {split.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _transport, protocol = await loop.create_connection(
        lambda: LeanSocket(index, subs, request, greeting=greeting), split.hostname, split.port
    )
    await asyncio.wait_for(protocol.opened, 60)
    return protocol


async def lean_out_socket(url: str, token: str, prefix: str, index: int, subs: Subscribers):
    ws = await lean_socket(url, {}, index, subs, subprotocol="prefect", greeting=True)
    ws.send(json.dumps({"type": "auth", "token": f"bench:{token}"}).encode())
    reply = json.loads(await asyncio.wait_for(ws.first, 60))
    assert reply["type"] == "auth_success", reply
    ws.send(json.dumps(out_filter(prefix)).encode())
    subs.mark_connected()
    await ws.lost


async def lean_feed_socket(url: str, session: str, index: int, subs: Subscribers, origin: str):
    headers = {"Cookie": f"sessionid={session}", "Origin": origin}
    ws = await lean_socket(url, headers, index, subs, subprotocol=None, greeting=False)
    subs.mark_connected()
    await ws.lost


async def subscribe(
    kind: str, url: str, secret: str, count: int, prefix: str, n_prefect: int, client: str
):
    subs = Subscribers(count)
    lean = client == "lean"

    async def one(index: int) -> None:
        await subs.gate.acquire()  # released by the socket once it is connected
        if kind == "feed":
            origin = url.replace("ws://", "http://").split("/ws/")[0]
            opener = lean_feed_socket if lean else feed_socket
            await opener(f"{url}?event={prefix}*", secret, index, subs, origin)
        elif index < n_prefect:
            await prefect_socket(prefix, index, subs)
        else:
            await (lean_out_socket if lean else out_socket)(url, secret, prefix, index, subs)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while subs.connected < count:
        await asyncio.sleep(0.02)
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
    print("CONNECTED", flush=True)
    while not all(subs.seen):
        await asyncio.sleep(0.01)
        subs.drain()
    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    ids = set(json.loads(line.split(" ", 1)[1]))
    deadline = time.monotonic() + float(os.environ.get("BENCH_LIVE_WAIT", 30))
    while time.monotonic() < deadline and not all(ids <= seen for seen in subs.seen):
        await asyncio.sleep(0.02)
        subs.drain()
    subs.drain()
    arrivals = [a for a in subs.arrivals if a[2] in ids]
    print(json.dumps({"arrivals": arrivals, "closed": subs.closed}), flush=True)
    for task in tasks:
        task.cancel()
    os._exit(0)  # do not wait for hundreds of closing handshakes


async def stall(url: str, token: str, prefix: str) -> None:
    """One `/api/events/out` subscriber that stops reading after its filter: the socket's
    buffers fill and stay full. On `REPORT` from stdin, prints whether the server closed it."""
    from websockets.asyncio.client import connect

    async with connect(url, subprotocols=["prefect"], max_queue=1, open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "auth", "token": f"bench:{token}"}))
        assert json.loads(await ws.recv())["type"] == "auth_success"
        await ws.send(json.dumps(out_filter(prefix)))
        print("CONNECTED", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(
            json.dumps({"close_code": ws.close_code, "close_reason": ws.close_reason}), flush=True
        )
    os._exit(0)


# --- senders --------------------------------------------------------------------------------------


def send(kind: str, base: str, token: str, prefix: str, count: int, interval: float) -> None:
    name = f"{prefix}tick"
    sent: list[tuple[str, float, float]] = []

    if kind == "prefect":
        from prefect.events import emit_event
        from prefect.events.worker import EventsWorker

        def one(event: dict) -> None:
            emit_event(
                event=event["event"],
                resource=event["resource"],
                related=event["related"],
                payload=event["payload"],
                id=uuid.UUID(event["id"]),
            )

        def done() -> None:
            EventsWorker.drain_all()

    elif kind == "sdk":
        from events.client import emit_event, flush

        def one(event: dict) -> None:
            emit_event(
                event["event"],
                event["resource"],
                related=event["related"],
                payload=event["payload"],
                id=event["id"],
            )

        def done() -> None:
            flush(timeout=30)

    elif kind == "ws":
        from websockets.sync.client import connect

        ws = connect(base.replace("http", "ws", 1) + "/api/events/in", subprotocols=["prefect"])
        ws.send(json.dumps({"type": "auth", "token": f"bench:{token}"}))
        assert json.loads(ws.recv())["type"] == "auth_success"

        def one(event: dict) -> None:
            ws.send(json.dumps(event))

        def done() -> None:
            ws.close()

    elif kind == "rest":
        import httpx

        http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30)

        def one(event: dict) -> None:
            response = http.post(f"{base}/api/events", json=[event])
            assert response.status_code == 204, response.text

        def done() -> None:
            http.close()

    else:
        raise SystemExit(f"unknown sender {kind}")

    for i in range(3):
        one(wire_event(f"bench.warm.{kind}", str(uuid.uuid4()), i))
    time.sleep(1.0)
    started = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, started + i * interval - time.monotonic()))
        event = wire_event(name, str(uuid.uuid4()), i)
        t0 = time.monotonic()
        one(event)
        sent.append((event["id"], t0, time.monotonic()))
    done()
    print(json.dumps({"sent": sent}), flush=True)


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "subscribe":
        kind, url, secret, count, prefix, *rest = args
        n_prefect = int(rest[0]) if rest else 0
        client = rest[1] if len(rest) > 1 else "websockets"
        asyncio.run(subscribe(kind, url, secret, int(count), prefix, n_prefect, client))
    elif mode == "stall":
        url, secret, prefix = args
        asyncio.run(stall(url, secret, prefix))
    elif mode == "send":
        kind, base, token, prefix, count, interval = args
        send(kind, base, token, prefix, int(count), float(interval))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
