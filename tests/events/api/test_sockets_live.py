"""The API sockets over the network: a real `manage.py serve` (our Daphne) and raw clients."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import connect

from events.api.sockets import EventsOutConsumer
from events.models import ApiToken, Event
from tests.factories import event_data

pytestmark = pytest.mark.live


@pytest.fixture
def secret(user) -> str:
    return ApiToken.issue(user, name="raw")[1]


def ws_url(server, path: str) -> str:
    return server.url.replace("http", "ws") + path


def test_events_in_stays_open_after_a_bad_frame_from_a_raw_client(server, secret):
    url = ws_url(server, "/api/events/in")
    good = [event_data(resource_id=f"acme.raw.{i}") for i in range(2)]
    with connect(url, subprotocols=["prefect"]) as ws:
        ws.send(json.dumps({"type": "auth", "token": f"eventsite:{secret}"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "auth_success"}
        ws.send(json.dumps(good[0]))
        ws.send("not json at all")
        ws.send(json.dumps(good[1]))
        ws.ping().wait(10)
    # The rejection is stored after the good frames' transaction: wait for both.
    deadline = time.monotonic() + 10
    while (
        Event.objects.filter(event="acme.order.created").count() < 2
        or not Event.objects.filter(event="eventsite.ingest.rejected").exists()
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    assert Event.objects.filter(event="acme.order.created").count() == 2
    assert Event.objects.filter(event="eventsite.ingest.rejected").count() == 1


def test_events_in_close_reason_reaches_a_raw_client(server):
    url = ws_url(server, "/api/events/in")
    with connect(url, subprotocols=["prefect"]) as ws:
        ws.send(json.dumps({"type": "auth", "token": "eventsite:wrong"}))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)

    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason == "Invalid token"


def test_a_subscriber_that_stops_reading_is_closed_with_a_reason(server, secret):
    headers = {"Authorization": f"Bearer {secret}"}
    # More events than the subscriber's queue holds, plus more bytes than the socket buffers
    # (a few MB on loopback while the reader does not read) and Daphne's write buffer hold.
    padding = "x" * 3000
    total = EventsOutConsumer.max_pending + 5_000
    with connect(ws_url(server, "/api/events/out"), subprotocols=["prefect"], max_queue=4) as ws:
        ws.send(json.dumps({"type": "auth", "token": f"eventsite:{secret}"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "auth_success"}
        ws.send(json.dumps({"type": "filter", "filter": {"event": {"prefix": ["acme.slow"]}}}))
        time.sleep(0.2)
        with httpx.Client(headers=headers, timeout=60) as http:
            for start in range(0, total, 1000):
                batch = [
                    event_data("acme.slow", resource_id=f"s.{i}", payload={"pad": padding})
                    for i in range(start, start + 1000)
                ]
                assert http.post(f"{server.url}/api/events", json=batch).status_code == 204
        received = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=30)
                received += 1

    assert closed.value.rcvd.code == 1013
    assert closed.value.rcvd.reason.startswith("Subscriber too slow")
    assert 0 < received < total
