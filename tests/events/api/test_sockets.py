"""The API sockets through Channels' WebsocketCommunicator against the real ASGI application."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from events.api import sockets as consumers
from events.ingest import ingest
from events.models import Event
from eventsite.asgi import application
from tests.factories import domain_events, event_data, related

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _fresh_channel_layer():
    # The layer outlives a test's event loop; start every test without old group members.
    await get_channel_layer().flush()
    yield
    await get_channel_layer().flush()


def socket(path: str, *, prefect: bool = True, authorization: str | None = None):
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return WebsocketCommunicator(
        application, path, subprotocols=["prefect"] if prefect else None, headers=headers
    )


async def open_socket(path: str, token: str, **kwargs) -> WebsocketCommunicator:
    ws = socket(path, **kwargs)
    connected, subprotocol = await ws.connect()
    assert connected
    assert subprotocol == "prefect"
    await ws.send_json_to({"type": "auth", "token": f"eventsite:{token}"})
    assert await ws.receive_json_from() == {"type": "auth_success"}
    return ws


async def closed_with(ws: WebsocketCommunicator) -> tuple[int, str]:
    message = await ws.receive_output(timeout=5)
    assert message["type"] == "websocket.close", message
    return message["code"], message.get("reason", "")


async def stored(**filters) -> list[Event]:
    return await sync_to_async(lambda: list(domain_events().filter(**filters)))()


async def wait_stored(count: int, timeout: float = 5.0, **filters) -> list[Event]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = await stored(**filters)
        if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.02)


async def receive_events(ws: WebsocketCommunicator, count: int) -> list[dict]:
    out = []
    for _ in range(count):
        message = await ws.receive_json_from(timeout=5)
        assert message["type"] == "event"
        out.append(message["event"])
    return out


post = sync_to_async(lambda events: ingest(events, source="test"))


# --- /api/events/in: authentication -----------------------------------------------------------


async def test_events_in_accepts_the_prefect_handshake_and_stores_frames(token):
    ws = await open_socket("/api/events/in", token)
    events = [event_data(resource_id=f"acme.order.{i}") for i in range(3)]

    for event in events:
        await ws.send_to(text_data=orjson.dumps(event).decode())
    await ws.disconnect()

    rows = await stored()
    assert sorted(str(r.id) for r in rows) == sorted(e["id"] for e in events)


async def test_events_in_closes_with_invalid_token_for_a_wrong_token(token):
    ws = socket("/api/events/in")
    await ws.connect()

    await ws.send_json_to({"type": "auth", "token": "eventsite:not-a-token"})

    assert await closed_with(ws) == (1008, "Invalid token")
    await ws.send_to(text_data=orjson.dumps(event_data()).decode())
    assert await stored() == []


async def test_events_in_closes_when_the_auth_message_has_no_token(token):
    ws = socket("/api/events/in")
    await ws.connect()

    await ws.send_json_to({"type": "auth", "token": None})

    assert await closed_with(ws) == (1008, "Auth required but no token provided")


async def test_events_in_closes_when_the_first_frame_is_not_an_auth_message(token):
    ws = socket("/api/events/in")
    await ws.connect()

    await ws.send_to(text_data=orjson.dumps(event_data()).decode())

    assert await closed_with(ws) == (1008, "Expected 'auth' message")
    assert await stored() == []


async def test_events_in_closes_when_no_auth_message_arrives_in_time(token, monkeypatch):
    monkeypatch.setattr(consumers, "AUTH_TIMEOUT_SECONDS", 0.1)
    ws = socket("/api/events/in")
    await ws.connect()

    assert await closed_with(ws) == (1008, "Expected 'auth' message")


async def test_events_in_takes_the_token_from_the_upgrade_header_when_the_message_has_none(token):
    basic = base64.b64encode(f"eventsite:{token}".encode()).decode()
    ws = socket("/api/events/in", authorization=f"Basic {basic}")
    await ws.connect()

    await ws.send_json_to({"type": "auth", "token": None})

    assert await ws.receive_json_from() == {"type": "auth_success"}
    await ws.disconnect()


async def test_events_in_legacy_mode_reads_the_token_from_a_basic_header(token):
    basic = base64.b64encode(f"eventsite:{token}".encode()).decode()
    ws = socket("/api/events/in", prefect=False, authorization=f"Basic {basic}")
    connected, subprotocol = await ws.connect()
    assert connected
    assert subprotocol is None
    event = event_data()

    await ws.send_to(text_data=orjson.dumps(event).decode())
    await ws.disconnect()

    assert [str(r.id) for r in await stored()] == [event["id"]]


async def test_events_in_cloud_style_bearer_upgrade_sends_events_without_a_handshake(token):
    ws = socket("/api/events/in", prefect=False, authorization=f"bearer {token}")
    await ws.connect()
    event = event_data()

    await ws.send_to(text_data=orjson.dumps(event).decode())
    await ws.disconnect()

    assert [str(r.id) for r in await stored()] == [event["id"]]


async def test_events_in_without_subprotocol_or_header_is_refused(token):
    ws = socket("/api/events/in", prefect=False)
    await ws.connect()

    assert await closed_with(ws) == (1008, "Auth required but no token provided")


async def test_events_in_with_a_wrong_bearer_header_is_refused(token):
    ws = socket("/api/events/in", prefect=False, authorization="Bearer es_wrong")
    await ws.connect()

    assert await closed_with(ws) == (1008, "Invalid token")
    await ws.send_to(text_data=orjson.dumps(event_data()).decode())
    assert await stored() == []


async def test_events_in_refuses_a_revoked_token(user):
    from events.models import ApiToken

    api_token, secret = await sync_to_async(ApiToken.issue)(user, "revoked")
    await sync_to_async(api_token.revoke)()
    ws = socket("/api/events/in")
    await ws.connect()

    await ws.send_json_to({"type": "auth", "token": f"eventsite:{secret}"})

    assert await closed_with(ws) == (1008, "Invalid token")


# --- /api/events/in: frames -------------------------------------------------------------------


async def test_events_in_skips_bad_frames_reports_them_and_keeps_the_socket_open(token):
    ws = await open_socket("/api/events/in", token)
    good = [event_data(resource_id=f"acme.order.{i}") for i in range(3)]
    no_resource = event_data()
    del no_resource["resource"]

    await ws.send_to(text_data=orjson.dumps(good[0]).decode())
    await ws.send_to(text_data='{"event": "broken json"')
    await ws.send_to(text_data=orjson.dumps(good[1]).decode())
    await ws.send_to(text_data=orjson.dumps(no_resource).decode())
    await ws.send_to(text_data=orjson.dumps(good[2]).decode())
    # The socket is still open: a frame after the bad ones is stored too.
    later = event_data(resource_id="acme.order.later")
    await asyncio.sleep(0.05)
    await ws.send_to(text_data=orjson.dumps(later).decode())
    await ws.disconnect()

    accepted = await stored(event="acme.order.created")
    assert sorted(str(r.id) for r in accepted) == sorted(e["id"] for e in [*good, later])
    rejected = await stored(event="eventsite.ingest.rejected")
    assert len(rejected) == 2
    reasons = sorted(r.payload["reason"] for r in rejected)
    assert reasons[0].startswith("Invalid event: resource: is required")
    assert reasons[1].startswith("The frame is not valid JSON")
    assert all(r.resource_id == "eventsite.ingest" for r in rejected)
    assert all(r.related[0]["prefect.resource.role"] == "api-token" for r in rejected)
    bad_json = next(r for r in rejected if "JSON" in r.payload["reason"])
    assert bad_json.payload["frame"] == '{"event": "broken json"'
    invalid = next(r for r in rejected if "Invalid" in r.payload["reason"])
    assert invalid.payload["problems"] == [{"field": "resource", "message": "is required"}]


async def test_events_in_truncates_the_excerpt_of_a_huge_bad_frame(token):
    ws = await open_socket("/api/events/in", token)

    await ws.send_to(text_data="x" * 10_000)
    await ws.disconnect()

    [rejected] = await stored(event="eventsite.ingest.rejected")
    assert rejected.payload["frame"] == "x" * consumers.EXCERPT_CHARS
    assert rejected.payload["frame_length"] == 10_000
    assert rejected.payload["truncated"] is True


async def test_events_in_ignores_resent_ids_after_a_reconnect(token):
    events = [event_data(resource_id=f"acme.order.{i}") for i in range(5)]
    first = await open_socket("/api/events/in", token)
    for event in events[:3]:
        await first.send_to(text_data=orjson.dumps(event).decode())
    await first.disconnect()

    second = await open_socket("/api/events/in", token)
    for event in events:  # the client resends everything it had not seen confirmed
        await second.send_to(text_data=orjson.dumps(event).decode())
    await second.disconnect()

    rows = await stored()
    assert len(rows) == 5
    assert {str(r.id) for r in rows} == {e["id"] for e in events}


async def test_events_in_writes_a_fast_burst_in_batches_and_loses_nothing(token):
    ws = await open_socket("/api/events/in", token)
    events = [event_data(resource_id=f"acme.order.{i}") for i in range(2_500)]

    for event in events:
        await ws.send_to(text_data=orjson.dumps(event).decode())
    await ws.disconnect(timeout=30)

    assert await sync_to_async(lambda: domain_events().count())() == 2_500


async def test_events_in_writes_everything_received_when_the_server_cancels_it(token):
    ws = await open_socket("/api/events/in", token)
    events = [event_data(resource_id=f"acme.order.{i}") for i in range(300)]
    for event in events:
        await ws.send_to(text_data=orjson.dumps(event).decode())

    # What Daphne does at shutdown: cancel the application while frames are still queued.
    ws.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ws.future

    assert await sync_to_async(lambda: domain_events().count())() == 300


# --- /api/events/out --------------------------------------------------------------------------


def name_filter(*prefixes: str, **extra) -> dict:
    return {"type": "filter", "filter": {"event": {"prefix": list(prefixes)}, **extra}}


async def test_events_out_requires_the_auth_message(token):
    ws = socket("/api/events/out")
    await ws.connect()

    await ws.send_json_to(name_filter("acme."))

    assert await closed_with(ws) == (1008, "Expected 'auth' message")


async def test_events_out_refuses_a_wrong_token(token):
    ws = socket("/api/events/out")
    await ws.connect()

    await ws.send_json_to({"type": "auth", "token": "eventsite:nope"})

    assert await closed_with(ws) == (1008, "Invalid token")


async def test_events_out_closes_1002_when_the_next_message_is_not_a_filter(token):
    ws = await open_socket("/api/events/out", token)

    await ws.send_json_to({"type": "subscribe"})

    assert await closed_with(ws) == (1002, "Expected 'filter' message")


async def test_events_out_closes_1002_with_a_short_reason_for_an_invalid_filter(token):
    ws = await open_socket("/api/events/out", token)

    await ws.send_json_to({"type": "filter", "filter": {"event": {"prefix": "x"}, "bogus": 1}})

    code, reason = await closed_with(ws)
    assert code == 1002
    assert reason.startswith("Invalid filter: ")
    assert len(reason.encode()) <= 123


async def test_events_out_backfills_then_streams_live_without_duplicates(token):
    old = event_data("acme.old", ago=timedelta(minutes=20))
    backfill = [
        event_data("acme.order.created", ago=timedelta(seconds=30 - i), resource_id=f"a.{i}")
        for i in range(3)
    ]
    other = event_data("other.thing")
    await post([old, *backfill, other])
    ws = await open_socket("/api/events/out", token)

    await ws.send_json_to(name_filter("acme."))
    first = await receive_events(ws, 3)
    live = event_data("acme.order.shipped")
    await post([live, event_data("other.live"), backfill[0]])  # a resent id is not new
    second = await receive_events(ws, 1)

    assert [e["id"] for e in first] == [e["id"] for e in backfill]  # ascending, ≤ 15 min
    assert all(e["received"] for e in first)
    assert [e["id"] for e in second] == [live["id"]]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_events_out_skips_live_copies_of_events_it_backfilled(token):
    ws = await open_socket("/api/events/out", token)
    backfilled = event_data("acme.order.created")
    await post([backfilled])
    consumer_messages = [{"type": "events.stored", "count": 1}]

    await ws.send_json_to(name_filter("acme."))
    [first] = await receive_events(ws, 1)
    # A wake-up for an event the backfill already sent (as if stored in between).
    for message in consumer_messages:
        await get_channel_layer().group_send("events", message)
    fresh = event_data("acme.order.paid")
    await post([fresh])
    [second] = await receive_events(ws, 1)

    assert first["id"] == backfilled["id"]
    assert second["id"] == fresh["id"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_events_out_applies_related_criteria_to_live_events(token):
    ws = await open_socket("/api/events/out", token)
    await ws.send_json_to(
        {"type": "filter", "filter": {"related": {"role": ["customer"], "id": ["acme.customer.7"]}}}
    )
    await ws.receive_nothing(timeout=0.1)
    wanted = event_data(related=[related("acme.customer.7", "customer")])
    unwanted = [
        event_data(related=[related("acme.customer.8", "customer")]),
        event_data(related=[related("acme.customer.7", "supplier")]),
        event_data(),
    ]

    await post([*unwanted, wanted])

    [got] = await receive_events(ws, 1)
    assert got["id"] == wanted["id"]
    assert got["related"] == wanted["related"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_events_out_clamps_the_backfill_to_fifteen_minutes(token):
    await post(
        [
            event_data("acme.a", ago=timedelta(minutes=16)),
            recent := event_data("acme.b", ago=timedelta(minutes=14)),
        ]
    )
    ws = await open_socket("/api/events/out", token)
    since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()

    await ws.send_json_to(name_filter("acme.", occurred={"since": since, "until": None}))

    [got] = await receive_events(ws, 1)
    assert got["id"] == recent["id"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_events_out_backfill_pages_through_more_than_one_page(token, monkeypatch):
    monkeypatch.setattr(consumers.EventsOutConsumer, "backfill_page_size", 4)
    events = [
        event_data("acme.x", ago=timedelta(seconds=60 - i), resource_id=f"r.{i}") for i in range(10)
    ]
    await post(events)
    ws = await open_socket("/api/events/out", token)

    await ws.send_json_to(name_filter("acme."))

    got = await receive_events(ws, 10)
    assert [e["id"] for e in got] == [e["id"] for e in events]
    await ws.disconnect()


async def test_events_out_without_backfill_sends_only_live_events(token):
    await post([event_data("acme.before")])
    ws = await open_socket("/api/events/out", token)

    await ws.send_json_to(name_filter("acme.") | {"backfill": False})
    await ws.receive_nothing(timeout=0.1)
    live = event_data("acme.after")
    await post([live])

    [got] = await receive_events(ws, 1)
    assert got["id"] == live["id"]
    await ws.disconnect()


async def test_events_out_closes_a_subscriber_that_falls_too_far_behind(token, monkeypatch):
    monkeypatch.setattr(consumers.EventsOutConsumer, "max_pending", 5)
    ws = await open_socket("/api/events/out", token)
    await ws.send_json_to(name_filter("acme."))
    await ws.receive_nothing(timeout=0.1)

    await post([event_data("acme.burst", resource_id=f"b.{i}") for i in range(20)])

    while True:
        message = await ws.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            break
        assert message["type"] == "websocket.send"
    assert message["code"] == 1013
    assert message["reason"].startswith("Subscriber too slow")


async def test_events_out_legacy_header_mode_accepts_a_filter_straight_away(token):
    ws = socket("/api/events/out", prefect=False, authorization=f"Bearer {token}")
    connected, _ = await ws.connect()
    assert connected

    await ws.send_json_to(name_filter("acme."))
    await ws.receive_nothing(timeout=0.1)
    live = event_data("acme.live")
    await post([live])

    [got] = await receive_events(ws, 1)
    assert got["id"] == live["id"]
    await ws.disconnect()


async def test_events_out_without_any_token_is_refused(token):
    ws = socket("/api/events/out", prefect=False)
    await ws.connect()

    assert await closed_with(ws) == (1008, "Auth required but no token provided")
