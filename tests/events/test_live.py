"""Live delivery from the stored log (`events.live`): no gap, whatever happens to the wake-ups.

Through the real ASGI app, sockets and database; the faults are real ones: a wake-up that never
comes, an event that commits behind the reader, a page that cannot keep up.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.utils import timezone

from events import broadcast, live
from events.consumers import FeedConsumer
from events.ingest import ingest
from events.models import Event
from eventsite.asgi import application
from tests.events.api.test_sockets import open_socket, receive_events
from tests.factories import event_data

pytestmark = pytest.mark.django_db(transaction=True)


class WakeUpsLost(InMemoryChannelLayer):
    """An in-memory layer whose broadcasts all go missing (a full or lost Redis, say)."""

    async def group_send(self, group, message):
        return None


@pytest.fixture(autouse=True)
async def _fresh_channel_layer():
    await get_channel_layer().flush()
    yield
    await get_channel_layer().flush()


@pytest.fixture
def session_cookie(logged_in_client) -> str:
    return logged_in_client.cookies["sessionid"].value


def feed_socket(cookie: str, query: dict | None = None) -> WebsocketCommunicator:
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"sessionid={cookie}".encode()),
    ]
    path = "/ws/feed/" + ("?" + urlencode(query) if query else "")
    return WebsocketCommunicator(application, path, headers=headers)


post = sync_to_async(lambda events: ingest(events, source="test"))


@sync_to_async
def commit_behind(data: dict, seen: dict) -> None:
    """Store an event stamped just before one readers have already seen: the commit of a
    writer that stamped its batch before another writer committed a later one."""
    stamp = Event.objects.get(id=seen["id"]).received - timedelta(milliseconds=1)
    with transaction.atomic():
        result = ingest([data], source="test")
        assert result.ok, result.rejected
        Event.objects.filter(id=data["id"]).update(received=stamp)


async def test_a_subscriber_gets_events_whose_wake_up_was_lost(token, settings, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "tests.events.test_live.WakeUpsLost"}}
    monkeypatch.setattr(broadcast, "add_waker", lambda wake: None)  # no in-process wake-up either
    ws = await open_socket("/api/events/out", token)
    await ws.send_json_to({"type": "filter", "filter": {"event": {"prefix": ["acme."]}}})
    assert await ws.receive_nothing(timeout=0.1)

    sent = [event_data("acme.order.created", resource_id=f"acme.order.{i}") for i in range(3)]
    await post(sent)

    # No wake-up comes: the reader's periodic read (every TICK_SECONDS) finds them in the store.
    got = await receive_events(ws, 3)
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in sent)
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_an_event_committed_behind_the_reader_is_still_delivered(token, session_cookie):
    api = await open_socket("/api/events/out", token)
    await api.send_json_to({"type": "filter", "filter": {"event": {"prefix": ["acme."]}}})
    feed = feed_socket(session_cookie, {"event": "acme.*"})
    assert (await feed.connect())[0]
    assert await api.receive_nothing(timeout=0.1)
    ahead = event_data("acme.order.created", resource_id="acme.order.ahead")
    await post([ahead])
    assert [e["id"] for e in await receive_events(api, 1)] == [ahead["id"]]
    assert ahead["id"] in (await feed.receive_json_from(timeout=5))["html"]

    behind = event_data("acme.order.created", resource_id="acme.order.behind")
    await commit_behind(behind, seen=ahead)

    assert [e["id"] for e in await receive_events(api, 1)] == [behind["id"]]
    assert behind["id"] in (await feed.receive_json_from(timeout=5))["html"]
    assert await api.receive_nothing(timeout=0.2)
    await api.disconnect()
    await feed.disconnect()


async def test_a_page_that_cannot_keep_up_is_closed_and_its_reconnect_backfills(
    session_cookie, monkeypatch
):
    monkeypatch.setattr(FeedConsumer, "max_pending", 5)
    feed = feed_socket(session_cookie, {"event": "acme.*"})
    assert (await feed.connect())[0]
    first = event_data("acme.order.created", resource_id="acme.order.0")
    await post([first])
    heard = await feed.receive_json_from(timeout=5)
    assert heard["count"] == 1
    received = (await sync_to_async(Event.objects.get)(id=first["id"])).received

    burst = [event_data("acme.order.created", resource_id=f"acme.order.{i}") for i in range(20)]
    await post(burst)

    message = await feed.receive_output(timeout=5)
    assert message["type"] == "websocket.close"
    assert message["code"] == 1013 and "too slow" in message["reason"]
    again = feed_socket(session_cookie, {"event": "acme.*", "live_after": received.isoformat()})
    assert (await again.connect())[0]
    backfill = await again.receive_json_from(timeout=5)
    assert backfill["backfill"] is True
    for event in burst:
        assert backfill["html"].count(f'id="ev-{event["id"]}"') == 1
    await again.disconnect()


async def test_one_read_of_the_log_serves_every_subscriber(token):
    sockets = []
    for _ in range(5):
        ws = await open_socket("/api/events/out", token)
        await ws.send_json_to({"type": "filter", "filter": {"event": {"prefix": ["acme."]}}})
        sockets.append(ws)
    assert await sockets[-1].receive_nothing(timeout=0.1)
    tail = live.tail()
    reads = tail.reads

    event = event_data("acme.order.created")
    await post([event])

    for ws in sockets:
        assert [e["id"] for e in await receive_events(ws, 1)] == [event["id"]]
    assert len(tail.subscriptions) == 5
    assert tail.reads - reads <= 2  # one wake-up; at most one tick besides
    for ws in sockets:
        await ws.disconnect()
    await asyncio.sleep(0)
    assert tail.subscriptions == set()


async def test_subscribers_sharing_a_filter_shape_keep_their_own_occurred_windows(token):
    """Filters equal but for `occurred` share one match per event; each window still applies."""
    now = timezone.now()
    prefix = {"event": {"prefix": ["acme."]}}
    window = {"since": (now - timedelta(hours=1)).isoformat(), "until": now.isoformat()}
    open_ended = await open_socket("/api/events/out", token)
    await open_ended.send_json_to({"type": "filter", "filter": prefix})
    bounded = await open_socket("/api/events/out", token)
    await bounded.send_json_to({"type": "filter", "filter": {**prefix, "occurred": window}})
    other = await open_socket("/api/events/out", token)
    await other.send_json_to({"type": "filter", "filter": {"event": {"name": ["acme.b"]}}})
    assert await other.receive_nothing(timeout=0.1)
    tail = live.tail()
    assert len({s.shape_key for s in tail.subscriptions}) == 2

    inside = event_data("acme.a", occurred=now - timedelta(minutes=5))
    later = event_data("acme.b", occurred=now + timedelta(seconds=30))
    await post([inside, later])

    assert {e["id"] for e in await receive_events(open_ended, 2)} == {inside["id"], later["id"]}
    assert [e["id"] for e in await receive_events(bounded, 1)] == [inside["id"]]
    assert [e["id"] for e in await receive_events(other, 1)] == [later["id"]]
    for ws in (open_ended, bounded, other):
        assert await ws.receive_nothing(timeout=0.1)
        await ws.disconnect()
