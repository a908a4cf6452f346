"""Open sockets follow revocation: a revoked token, a deactivated or demoted user is closed 1008."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group

from events.accounts.models import ApiToken
from events.accounts.revocation import NOT_ALLOWED_ANY_MORE, REVOKED
from eventsite.asgi import application
from tests.events.api.test_sockets import closed_with, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick_recheck(settings):
    settings.EVENTSITE_SOCKET_RECHECK = timedelta(seconds=0.2)


async def closed_after_any_events(ws: WebsocketCommunicator) -> tuple[int, str]:
    """The close code and reason, after whatever events the socket still sent."""
    while True:
        message = await ws.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return message["code"], message.get("reason", "")


def feed(path: str, client) -> WebsocketCommunicator:
    cookie = client.cookies["sessionid"].value
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"sessionid={cookie}".encode()),
    ]
    return WebsocketCommunicator(application, path, headers=headers)


async def subscribed(token: str) -> WebsocketCommunicator:
    ws = await open_socket("/api/events/out", token)
    await ws.send_json_to({"type": "filter", "filter": {}})
    return ws


async def test_a_revoked_token_loses_its_open_subscription(token):
    ws = await subscribed(token)
    await sync_to_async(lambda: ApiToken.objects.get().revoke())()

    assert await closed_after_any_events(ws) == (1008, REVOKED)


async def test_a_deactivated_user_loses_its_open_sockets(token, user):
    ws = await open_socket("/api/events/in", token)
    user.is_active = False
    await sync_to_async(user.save)()

    assert await closed_with(ws) == (1008, REVOKED)


async def test_a_user_demoted_to_viewer_loses_the_socket_that_writes_but_keeps_reading(
    django_user_model,
):
    editor = await sync_to_async(django_user_model.objects.create_user)("ed")
    _, secret = await sync_to_async(ApiToken.issue)(editor)
    writing = await open_socket("/api/events/in", secret)
    reading = await subscribed(secret)

    viewers, _ = await sync_to_async(Group.objects.get_or_create)(name="viewer")
    await sync_to_async(editor.groups.add)(viewers)

    assert await closed_with(writing) == (1008, NOT_ALLOWED_ANY_MORE)
    assert await reading.receive_nothing(timeout=0.6)
    await reading.disconnect()


async def test_the_audit_feed_socket_closes_when_its_admin_is_demoted(user, client):
    await sync_to_async(client.force_login)(user)
    ws = feed("/ws/feed/?scope=audit", client)
    connected, _ = await ws.connect()
    assert connected
    user.is_staff = False
    await sync_to_async(user.save)()

    assert await closed_after_any_events(ws) == (1008, NOT_ALLOWED_ANY_MORE)


async def test_a_viewer_cannot_open_the_audit_feed_socket(django_user_model, client):
    viewer = await sync_to_async(django_user_model.objects.create_user)("vi")
    viewers, _ = await sync_to_async(Group.objects.get_or_create)(name="viewer")
    await sync_to_async(viewer.groups.add)(viewers)
    await sync_to_async(client.force_login)(viewer)
    ws = feed("/ws/feed/?scope=audit", client)

    connected, code = await ws.connect()

    assert not connected
    assert code == 4403
