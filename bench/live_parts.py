"""The processes of the live benchmarks: subscribers and senders, each a separate process.

    python -m bench.live_parts subscribe KIND URL SECRET COUNT PREFIX [PREFECT_COUNT]
    python -m bench.live_parts send KIND BASE_URL TOKEN PREFIX COUNT INTERVAL
    python -m bench.live_parts stall URL SECRET PREFIX

Times are `time.monotonic()`, one clock for every process on the machine (Linux CLOCK_MONOTONIC).

subscribe: opens COUNT sockets — KIND `out`: `/api/events/out` with Prefect's protocol (auth,
then a filter on PREFIX with the `occurred` window Prefect's own subscriber sends), of which
PREFECT_COUNT are Prefect 3.9.1's own `get_events_subscriber` (needs PREFECT_API_URL and
PREFECT_API_AUTH_STRING); KIND `feed`: the feed page's `/ws/feed/` socket with the session
cookie SECRET and `?event=PREFIX*`. Prints `CONNECTED`, then `READY`
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
import json
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

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

    def mark_connected(self) -> None:
        self.connected += 1
        self.gate.release()

    def arrived(self, index: int, kind: str, event_id: str, received: str | None = None) -> None:
        # With the event's `received` stamp (the server's clock just before its commit, same
        # machine): stored → arrival, the live-delivery half of send → arrival.
        stored_ms = None
        if received:
            stamp = datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp()
            stored_ms = (time.time() - stamp) * 1000
        self.arrivals.append((index, kind, event_id, time.monotonic(), stored_ms))
        self.seen[index].add(event_id)


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


async def subscribe(kind: str, url: str, secret: str, count: int, prefix: str, n_prefect: int):
    subs = Subscribers(count)

    async def one(index: int) -> None:
        await subs.gate.acquire()  # released by the socket once it is connected
        if kind == "feed":
            origin = url.replace("ws://", "http://").split("/ws/")[0]
            await feed_socket(f"{url}?event={prefix}*", secret, index, subs, origin)
        elif index < n_prefect:
            await prefect_socket(prefix, index, subs)
        else:
            await out_socket(url, secret, prefix, index, subs)

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    while subs.connected < count:
        await asyncio.sleep(0.02)
        for task in tasks:
            if task.done() and task.exception():
                raise task.exception()
    print("CONNECTED", flush=True)
    while not all(subs.seen):
        await asyncio.sleep(0.01)
    print("READY", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    ids = set(json.loads(line.split(" ", 1)[1]))
    deadline = time.monotonic() + float(os.environ.get("BENCH_LIVE_WAIT", 30))
    while time.monotonic() < deadline and not all(ids <= seen for seen in subs.seen):
        await asyncio.sleep(0.02)
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
        asyncio.run(subscribe(kind, url, secret, int(count), prefix, n_prefect))
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
