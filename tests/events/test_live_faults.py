"""Live delivery under faults, through real servers, a real Redis and raw websocket clients.

Each test ends with the same check: every subscriber holds every stored event that matches it
exactly once. A subscriber closed with a reason reconnects and takes the rest from the backfill,
dropping the ids it already has, as Prefect's client and the feed page do; within one connection
no event may come twice. Nothing waits for a fixed time to pass: once the writers are done, the
clients read until they hold every stored event that matches (not merely the last one stored:
a server delivers its own commits at once, possibly ahead of others' it has yet to read), under
a deadline that only bounds a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.sync.client import connect

from events.ingest import ingest
from events.models import ApiToken, Event
from tests.conftest import LiveServer
from tests.factories import event_data

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

DEADLINE = 90.0
ROW_ID = re.compile(r'id="ev-([0-9a-f-]{36})"')
ROW_RECEIVED = re.compile(r'data-received="([^"]+)"')


class Subscriber(threading.Thread):
    """A websocket client that keeps every event it is sent until the run's last one arrives,
    reconnecting (and backfilling) whenever the server closes it."""

    def __init__(self, name: str, *, last_id: Callable[[], str | None]):
        super().__init__(daemon=True, name=name)
        self.last_id = last_id
        self.ids: list[str] = []  # every id kept, in arrival order, across connections
        self.kept: set[str] = set()
        self.expected: set[str] | None = None  # every matching stored id, once writing is over
        self.repeated: list[str] = []  # ids sent twice within one connection
        self.closes: list[tuple[int, str]] = []
        self.ready = threading.Event()
        self.reading = threading.Event()
        self.reading.set()
        self.error: BaseException | None = None

    def run(self) -> None:
        deadline = time.monotonic() + DEADLINE
        try:
            while time.monotonic() < deadline:
                if self.session(deadline):
                    return
        except BaseException as exc:  # reported by the test
            self.error = exc

    def done(self) -> bool:
        expected = self.expected
        return expected is not None and expected <= self.kept

    def has_last(self) -> bool:
        last = self.last_id()
        return last is not None and last in self.kept

    def next_frame(self, ws, deadline: float) -> dict | None:
        """The next frame, or None after a short wait (so that `done` is looked at again)."""
        try:
            return json.loads(ws.recv(timeout=min(max(deadline - time.monotonic(), 0.1), 0.5)))
        except TimeoutError:
            return None

    def keep(self, ids: list[str], live_in_connection: set[str], *, backfill: bool) -> None:
        """Keep new ids; a live id sent twice on one connection is a repeat (a backfill may
        overlap what arrives live: the page skips rows it has)."""
        for event_id in ids:
            if not backfill:
                if event_id in live_in_connection:
                    self.repeated.append(event_id)
                live_in_connection.add(event_id)
            if event_id not in self.kept:
                self.kept.add(event_id)
                self.ids.append(event_id)

    def session(self, deadline: float) -> bool:
        raise NotImplementedError


class OutSubscriber(Subscriber):
    """`/api/events/out`, like Prefect's client: a reconnect asks for the backfill again."""

    def __init__(self, name, *, url: str, secret: str, prefix: str, last_id, max_queue=None):
        super().__init__(name, last_id=last_id)
        self.url, self.secret, self.prefix, self.max_queue = url, secret, prefix, max_queue
        self.keepalive = 20.0  # websockets' default ping interval and timeout, as Prefect's
        self.ws = None

    def session(self, deadline: float) -> bool:
        in_connection: set[str] = set()
        with connect(
            self.url,
            subprotocols=["prefect"],
            max_queue=self.max_queue,
            ping_interval=self.keepalive,
            ping_timeout=self.keepalive,
        ) as ws:
            self.ws = ws
            ws.send(json.dumps({"type": "auth", "token": f"eventsite:{self.secret}"}))
            assert json.loads(ws.recv(timeout=10)) == {"type": "auth_success"}
            ws.send(json.dumps({"type": "filter", "filter": {"event": {"prefix": [self.prefix]}}}))
            self.ready.set()
            try:
                while not self.done():
                    self.reading.wait()
                    frame = self.next_frame(ws, deadline)
                    if frame is None:
                        continue
                    # Backfill and live share one stream, each id once per connection; ids a
                    # reconnect's backfill re-sends are dropped as Prefect's client does.
                    self.keep([frame["event"]["id"]], in_connection, backfill=False)
            except ConnectionClosed as closed:
                self.closes.append(close_of(closed))
                return False
        return True


def close_of(closed: ConnectionClosed) -> tuple[int, str]:
    """The server's close (code, reason); a client that closed first (its keepalive ping went
    unanswered) says so in the reason; (0, "") when the connection just dropped."""
    if closed.rcvd is not None:
        return closed.rcvd.code, closed.rcvd.reason
    if closed.sent is not None:
        return closed.sent.code, f"closed by the client: {closed.sent.reason}"
    return 0, ""


class FeedSubscriber(Subscriber):
    """`/ws/feed/` as the page uses it: on reconnect, `live_after` = the newest row's received."""

    def __init__(self, name, *, server: LiveServer, cookie: str, query: str, last_id):
        super().__init__(name, last_id=last_id)
        self.server, self.cookie, self.query = server, cookie, query
        self.newest: str | None = None

    def session(self, deadline: float) -> bool:
        in_connection: set[str] = set()
        url = self.server.url.replace("http", "ws") + "/ws/feed/?" + self.query
        if self.newest:
            url += "&live_after=" + httpx.QueryParams({"x": self.newest})["x"]
        headers = {"Cookie": f"sessionid={self.cookie}", "Origin": self.server.url}
        with connect(url, additional_headers=headers) as ws:
            self.ready.set()
            try:
                while not self.done():
                    self.reading.wait()
                    frame = self.next_frame(ws, deadline)
                    if frame is None or frame.get("type") != "rows":
                        continue
                    for received in ROW_RECEIVED.findall(frame["html"]):
                        self.newest = max(self.newest or received, received)
                    self.keep(
                        ROW_ID.findall(frame["html"]), in_connection, backfill=frame["backfill"]
                    )
            except ConnectionClosed as closed:
                self.closes.append(close_of(closed))
                return False
        return True


class Writer:
    """Posts batches through the REST API, resending a batch until a server takes it (a client
    does the same; stored ids are never stored twice)."""

    def __init__(self, servers: list[LiveServer], secret: str):
        self.servers = servers
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.posted = 0
        self.failures = 0

    def post(self, batch: list[dict]) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            server = self.servers[self.posted % len(self.servers)]
            self.posted += 1
            try:
                response = httpx.post(
                    f"{server.url}/api/events", json=batch, headers=self.headers, timeout=30
                )
                if response.status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            self.failures += 1
            assert time.monotonic() < deadline, "no server took the batch"
            time.sleep(0.05)


def finish(subscribers: list[Subscriber], prefix: str, last: dict) -> None:
    expected = set(
        map(str, Event.objects.filter(event__startswith=prefix).values_list("id", flat=True))
    )
    assert last["id"] in expected
    for subscriber in subscribers:
        subscriber.expected = expected
    for subscriber in subscribers:
        subscriber.join(DEADLINE)
    for subscriber in subscribers:
        assert subscriber.error is None, (subscriber.name, subscriber.error)
        assert not subscriber.is_alive(), f"{subscriber.name} never got every stored event"
        assert subscriber.repeated == [], subscriber.name
        assert len(subscriber.ids) == len(set(subscriber.ids))
        assert set(subscriber.ids) == expected, (
            subscriber.name,
            len(expected - set(subscriber.ids)),
            subscriber.closes,
        )
        for code, reason in subscriber.closes:
            assert code in (1011, 1012, 1013) and reason, (subscriber.name, code, reason)


@pytest.fixture
def secret(user) -> str:
    return ApiToken.issue(user, name="faults")[1]


@pytest.fixture
def servers_on_own_redis(live_server_env, transactional_db, own_redis):
    """`serve` on the test database with the test's Redis as channel layer and cache: two
    processes on PostgreSQL (a shared database), one on SQLite."""
    env = {**live_server_env, "EVENTSITE_REDIS_URL": own_redis.url}
    count = 2 if connection.vendor == "postgresql" else 1
    servers = [LiveServer(env, ("--no-engine",) if i else ()) for i in range(count)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def start_subscribers(subscribers: list[Subscriber]) -> None:
    for subscriber in subscribers:
        subscriber.start()
    for subscriber in subscribers:
        assert subscriber.ready.wait(30), subscriber.name


def test_every_subscriber_gets_every_event_through_a_redis_restart(
    servers_on_own_redis, own_redis, secret, logged_in_client
):
    prefix = f"acme.fault{uuid.uuid4().hex[:8]}."
    cookie = logged_in_client.cookies["sessionid"].value
    last: dict = {}
    subscribers: list[Subscriber] = []
    for n, server in enumerate(servers_on_own_redis):
        url = server.url.replace("http", "ws") + "/api/events/out"
        subscribers += [
            OutSubscriber(
                f"out{n}", url=url, secret=secret, prefix=prefix, last_id=lambda: last.get("id")
            ),
            FeedSubscriber(
                f"feed{n}",
                server=server,
                cookie=cookie,
                query=f"event={prefix}*",
                last_id=lambda: last.get("id"),
            ),
        ]
    start_subscribers(subscribers)
    writer = Writer(servers_on_own_redis, secret)

    for i in range(20):
        if i == 8:
            own_redis.restart()
        writer.post([event_data(f"{prefix}tick", f"acme.r.{i}.{j}") for j in range(25)])
    last.update(event_data(f"{prefix}last", "acme.r.last"))
    writer.post([last])

    finish(subscribers, prefix, last)


def test_a_subscriber_that_stops_reading_during_a_burst_ends_with_every_event_once(
    server, secret, logged_in_client
):
    prefix = f"acme.stall{uuid.uuid4().hex[:8]}."
    cookie = logged_in_client.cookies["sessionid"].value
    url = server.url.replace("http", "ws") + "/api/events/out"
    last: dict = {}
    stalled = OutSubscriber(
        "stalled", url=url, secret=secret, prefix=prefix, last_id=lambda: last.get("id")
    )
    stalled.max_queue = 4
    stalled_feed = FeedSubscriber(
        "stalled-feed",
        server=server,
        cookie=cookie,
        query=f"event={prefix}*",
        last_id=lambda: last.get("id"),
    )
    steady = OutSubscriber(
        "steady", url=url, secret=secret, prefix=prefix, last_id=lambda: last.get("id")
    )
    subscribers = [stalled, stalled_feed, steady]
    start_subscribers(subscribers)
    stalled.reading.clear()
    stalled_feed.reading.clear()
    writer = Writer([server], secret)
    padding = "x" * 1000

    for i in range(6):
        writer.post(
            [
                event_data(f"{prefix}tick", f"acme.s.{i}.{j}", payload={"pad": padding})
                for j in range(500)
            ]
        )
    last.update(event_data(f"{prefix}last", "acme.s.last"))
    writer.post([last])
    # The steady subscriber has the last event: the burst is over.
    deadline = time.monotonic() + DEADLINE
    while not steady.has_last():
        assert time.monotonic() < deadline, "the steady subscriber never got the last event"
        time.sleep(0.05)
    stalled.reading.set()
    stalled_feed.reading.set()

    finish(subscribers, prefix, last)


def test_a_server_starved_of_cpu_mid_burst_ends_with_every_event_once(
    server, secret, logged_in_client
):
    """`serve` gets no CPU at all (SIGSTOP) while it is sending a burst, and the log grows
    meanwhile from another process (this one, through the real write path); when it runs again,
    its tail has a backlog, its sockets a half-sent burst and its wake-ups are stale or missing
    (none reach it on the in-memory layer). Every subscriber still ends with every event once,
    or is closed with a reason and backfills."""
    prefix = f"acme.starved{uuid.uuid4().hex[:8]}."
    cookie = logged_in_client.cookies["sessionid"].value
    url = server.url.replace("http", "ws") + "/api/events/out"
    last: dict = {}
    subscribers = [
        OutSubscriber("out", url=url, secret=secret, prefix=prefix, last_id=lambda: last.get("id")),
        FeedSubscriber(
            "feed",
            server=server,
            cookie=cookie,
            query=f"event={prefix}*",
            last_id=lambda: last.get("id"),
        ),
    ]
    start_subscribers(subscribers)
    writer = Writer([server], secret)
    writer.post([event_data(f"{prefix}tick", f"acme.c.0.{j}") for j in range(500)])
    os.kill(server.process.pid, signal.SIGSTOP)  # mid-burst: the 500 are still being sent
    try:
        for i in range(1, 5):
            stored = ingest(
                [event_data(f"{prefix}tick", f"acme.c.{i}.{j}") for j in range(500)],
                source="test",
            )
            assert stored.ok and len(stored.stored) == 500
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    last.update(event_data(f"{prefix}last", "acme.c.last"))
    writer.post([last])

    finish(subscribers, prefix, last)


def test_a_subscriber_that_stops_reading_until_its_keepalive_fails_ends_with_every_event_once(
    server, secret
):
    """A client that stops reading during a burst (Prefect's, for 40 s: websockets' 20 s ping
    + 20 s timeout) cannot get the server's pong, queued behind the frames it does not read, and
    closes itself; it reconnects and the backfill fills the rest. The keepalive is 1 s here, so
    the test stops reading until that close happened (no fixed wait), in about 2 s."""
    prefix = f"acme.keepalive{uuid.uuid4().hex[:8]}."
    url = server.url.replace("http", "ws") + "/api/events/out"
    last: dict = {}
    stalled = OutSubscriber(
        "stalled", url=url, secret=secret, prefix=prefix, last_id=lambda: last.get("id")
    )
    stalled.max_queue, stalled.keepalive = 4, 1.0
    steady = OutSubscriber(
        "steady", url=url, secret=secret, prefix=prefix, last_id=lambda: last.get("id")
    )
    start_subscribers([stalled, steady])
    stalled.reading.clear()
    writer = Writer([server], secret)
    padding = "x" * 1000
    deadline = time.monotonic() + DEADLINE
    i = 0
    while stalled.ws.protocol.state is not State.CLOSED:  # more of the burst until it gave up
        assert time.monotonic() < deadline, "the stalled client never closed"
        writer.post(
            [
                event_data(f"{prefix}tick", f"acme.k.{i}.{j}", payload={"pad": padding})
                for j in range(500)
            ]
        )
        i += 1
    stalled.reading.set()
    last.update(event_data(f"{prefix}last", "acme.k.last"))
    writer.post([last])

    finish([stalled, steady], prefix, last)
    assert stalled.closes[0][1].startswith("closed by the client: keepalive")
