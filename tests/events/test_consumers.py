"""The feed's live socket `/ws/feed/`, through the real ASGI app, session auth and channel layer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from events.ingest import ingest
from eventsite.asgi import application
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session_cookie(logged_in_client) -> str:
    return logged_in_client.cookies["sessionid"].value


def communicator(query: dict | None = None, cookie: str | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    path = "/ws/feed/" + ("?" + urlencode(query, doseq=True) if query else "")
    return WebsocketCommunicator(application, path, headers=headers)


async def store(*items):
    result = await sync_to_async(ingest)(list(items), source="test", allow_reserved=True)
    assert result.ok, result.rejected
    return result.stored


async def test_anonymous_socket_is_rejected():
    ws = communicator()

    connected, _ = await ws.connect()

    assert connected is False


async def test_socket_from_another_origin_is_rejected(session_cookie):
    ws = WebsocketCommunicator(
        application,
        "/ws/feed/",
        headers=[
            (b"origin", b"http://evil.example"),
            (b"cookie", f"sessionid={session_cookie}".encode()),
        ],
    )

    connected, _ = await ws.connect()

    assert connected is False


async def test_matching_event_is_pushed_as_a_rendered_row(session_cookie):
    ws = communicator({"event": "acme.order.*"}, session_cookie)
    connected, _ = await ws.connect()
    assert connected

    (event,) = await store(event_data("acme.order.created", "acme.order.1", payload={"n": 1}))

    message = await ws.receive_json_from(timeout=2)
    assert message["type"] == "rows" and message["count"] == 1
    assert f'<article class="ev sev-other" id="ev-{event.id}"' in message["html"]
    assert "Acme Order Created" in message["html"]
    await ws.disconnect()


async def test_non_matching_events_are_not_pushed(session_cookie):
    ws = communicator({"event": "acme.order.*", "label": "env=prod"}, session_cookie)
    assert (await ws.connect())[0]

    await store(
        event_data("acme.payment.captured", labels={"env": "prod"}),
        event_data("acme.order.created", labels={"env": "dev"}),
    )
    assert await ws.receive_nothing(timeout=0.3)
    (wanted,) = await store(event_data("acme.order.created", labels={"env": "prod"}))

    message = await ws.receive_json_from(timeout=2)
    assert message["count"] == 1 and str(wanted.id) in message["html"]
    await ws.disconnect()


async def test_related_and_text_filters_apply_to_live_rows(session_cookie):
    ws = communicator({"related": "acme.customer.3", "q": "refund"}, session_cookie)
    assert (await ws.connect())[0]

    await store(
        event_data(related=[related("acme.customer.3", "customer")], payload={"note": "paid"}),
        event_data(related=[related("acme.customer.4", "customer")], payload={"note": "refund"}),
    )
    assert await ws.receive_nothing(timeout=0.3)
    (wanted,) = await store(
        event_data(related=[related("acme.customer.3", "customer")], payload={"note": "refund"})
    )

    message = await ws.receive_json_from(timeout=2)
    assert str(wanted.id) in message["html"]
    await ws.disconnect()


async def test_a_batch_is_pushed_newest_first_in_one_frame(session_cookie):
    ws = communicator({}, session_cookie)
    assert (await ws.connect())[0]
    now = datetime.now(UTC)

    older, newer = await store(
        event_data(occurred=now - timedelta(seconds=5)), event_data(occurred=now)
    )

    message = await ws.receive_json_from(timeout=2)
    assert message["count"] == 2
    assert message["html"].index(str(newer.id)) < message["html"].index(str(older.id))
    await ws.disconnect()


async def test_log_writes_stay_hidden_live_unless_picked(session_cookie):
    hidden = communicator({}, session_cookie)
    picked = communicator({"event": "prefect.log.write"}, session_cookie)
    assert (await hidden.connect())[0] and (await picked.connect())[0]

    (log,) = await store(event_data("prefect.log.write"))

    assert str(log.id) in (await picked.receive_json_from(timeout=2))["html"]
    assert await hidden.receive_nothing(timeout=0.3)
    await hidden.disconnect()
    await picked.disconnect()


async def test_a_past_window_gets_no_live_rows(session_cookie):
    now = datetime.now(UTC)
    ws = communicator(
        {
            "since": (now - timedelta(hours=2)).isoformat(),
            "until": (now - timedelta(hours=1)).isoformat(),
        },
        session_cookie,
    )
    assert (await ws.connect())[0]

    await store(event_data())

    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_untrusted_values_are_escaped_in_live_rows(session_cookie):
    ws = communicator({}, session_cookie)
    assert (await ws.connect())[0]

    await store(
        event_data(
            "acme.<script>alert(1)</script>",
            "acme.<img src=x onerror=alert(1)>",
            labels={"prefect.resource.name": "javascript:alert(1)"},
            related=[related("javascript:alert(2)", "<b>x</b>")],
            payload={"html": "<script>alert(3)</script>", "long": "y" * 100_000},
        )
    )

    html = (await ws.receive_json_from(timeout=2))["html"]
    assert "<script>" not in html and "<img src=x" not in html and "<b>x</b>" not in html
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;" in html
    assert len(html) < 5000
    await ws.disconnect()


async def test_reconnect_catches_up_on_events_received_while_away(session_cookie):
    since = datetime.now(UTC)
    missed, _other = await store(event_data("acme.order.created"), event_data("acme.payment.x"))

    ws = communicator({"event": "acme.order.*", "live_after": since.isoformat()}, session_cookie)
    assert (await ws.connect())[0]

    message = await ws.receive_json_from(timeout=2)
    assert message["backfill"] is True and message["count"] == 1
    assert str(missed.id) in message["html"]
    await ws.disconnect()


async def test_a_new_page_catches_up_from_its_render_not_before(session_cookie):
    """The page's first socket must not bring back what its render already read: rows stored
    before it are on the page or on its next pages ("load more"), and counted in its total."""
    await store(*[event_data("acme.order.created") for _ in range(3)])
    rendered = datetime.now(UTC)
    (after_render,) = await store(event_data("acme.order.created"))
    ws = communicator(
        {
            "event": "acme.order.*",
            "live_after": rendered.isoformat(),
            "rendered": rendered.isoformat(),
        },
        session_cookie,
    )
    assert (await ws.connect())[0]

    message = await ws.receive_json_from(timeout=2)
    assert message["backfill"] is True and message["count"] == 1
    assert str(after_render.id) in message["html"]
    await ws.disconnect()


async def test_invalid_parameters_still_connect_with_the_valid_ones(session_cookie):
    ws = communicator({"event": "acme.order.*", "since": "not-a-date"}, session_cookie)
    assert (await ws.connect())[0]

    await store(event_data("acme.payment.x"))
    assert await ws.receive_nothing(timeout=0.3)
    (wanted,) = await store(event_data("acme.order.created"))

    assert str(wanted.id) in (await ws.receive_json_from(timeout=2))["html"]
    await ws.disconnect()


async def test_ping_is_answered(session_cookie):
    ws = communicator({}, session_cookie)
    assert (await ws.connect())[0]

    await ws.send_to(text_data="ping")

    assert json.loads(await ws.receive_from(timeout=2)) == {"type": "pong"}
    await ws.disconnect()


async def test_the_audit_scope_pushes_audit_events_and_the_feed_does_not(session_cookie):
    audit_ws = communicator({"scope": "audit"}, session_cookie)
    feed_ws = communicator(None, session_cookie)
    assert (await audit_ws.connect())[0]
    assert (await feed_ws.connect())[0]

    await store(event_data("prefect-cloud.api-token.created", "eventsite.api-token.9"))
    await store(event_data("acme.order.created", "acme.order.9"))

    audit_row = await audit_ws.receive_json_from(timeout=2)
    feed_row = await feed_ws.receive_json_from(timeout=2)
    assert "eventsite.api-token.9" in audit_row["html"]
    assert "acme.order.9" in feed_row["html"]
    assert await audit_ws.receive_nothing(timeout=0.3)
    assert await feed_ws.receive_nothing(timeout=0.3)
    await audit_ws.disconnect()
    await feed_ws.disconnect()


async def test_a_socket_open_longer_than_the_group_expiry_keeps_getting_rows(
    session_cookie, settings
):
    # The layer forgets group members after `group_expiry`; the consumer renews its place.
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"group_expiry": 2},
        }
    }
    ws = communicator({"event": "acme.order.*"}, session_cookie)
    assert (await ws.connect())[0]

    await asyncio.sleep(3.5)
    await store(event_data("acme.order.created", "acme.order.late"))

    message = await ws.receive_json_from(timeout=2)
    assert "acme.order.late" in message["html"]
    await ws.disconnect()
