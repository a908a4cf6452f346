"""Our server frames live text messages itself (`eventsite.server`): the bytes are exactly a
websocket text frame, and a real `serve` fans one event out to many sockets through them."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from events.models import ApiToken
from eventsite.server import text_frame
from tests.factories import event_data


@pytest.mark.parametrize(
    "text",
    ["", "x", "x" * 125, "x" * 126, "x" * 65_535, "x" * 65_536, "é漢" * 40_000],
    ids=["empty", "1", "125", "126", "65535", "65536", "non-ascii"],
)
def test_a_text_frame_is_the_frame_a_websocket_library_writes(text):
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])

    assert text_frame(text) == expected


@pytest.mark.live
def test_one_event_reaches_every_subscriber_once_in_order_with_large_and_non_ascii_ones(
    server, user
):
    secret = ApiToken.issue(user, name="fan-out")[1]
    url = server.url.replace("http", "ws") + "/api/events/out"
    sockets = []
    try:
        for _ in range(20):
            ws = connect(url, subprotocols=["prefect"])
            ws.send(json.dumps({"type": "auth", "token": f"eventsite:{secret}"}))
            assert json.loads(ws.recv(timeout=10)) == {"type": "auth_success"}
            ws.send(json.dumps({"type": "filter", "filter": {"event": {"prefix": ["acme.fan"]}}}))
            sockets.append(ws)
        time.sleep(0.3)  # every socket follows the log before the first event is stored
        # Sizes on both sides of each frame-length encoding and of the server's frame memo.
        pads = ["", "ü" * 100, "x" * 70_000, "漢" * 30_000, "y" * 300_000]
        sent = []
        with httpx.Client(headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
            for i in range(30):
                event = event_data("acme.fan", resource_id=f"f.{i}", payload={"p": pads[i % 5]})
                assert http.post(f"{server.url}/api/events", json=[event]).status_code == 204
                sent.append(event["id"])

        for ws in sockets:
            got = []
            while len(got) < len(sent):
                message = json.loads(ws.recv(timeout=20))
                assert message["event"]["payload"]["p"] == pads[len(got) % 5]
                got.append(message["event"]["id"])
            assert got == sent
    finally:
        for ws in sockets:
            ws.close()
