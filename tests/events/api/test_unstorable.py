"""What the store would refuse is refused by the one validation, on both backends, and never
takes its good neighbours with it: deep nesting, NUL, lone surrogates, 1.4 MB events, and an
error the database raises itself (a trigger stands for any such refusal)."""

from __future__ import annotations

import json
import time

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection
from websockets.sync.client import connect

from events.api.sockets import REJECTED_EVENT
from events.models import Event
from events.schema import MAX_DEPTH
from tests.events.api.test_sockets import open_socket, stored, wait_stored
from tests.factories import domain_events, event_data


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# Events the store refused before this validation (500 on REST, 1011 on the socket).
UNSTORABLE = {
    "deep": lambda: event_data(payload=nested(300)),
    "nul in the name": lambda: event_data("acme.order\x00created"),
    "nul in a label": lambda: event_data(labels={"note": "a\x00b"}),
    "nul in a payload key": lambda: event_data(payload={"k\x00": 1}),
    "nul in a payload value": lambda: event_data(payload={"k": ["x", "y\x00"]}),
}


def post(api_client, events, **kwargs):
    body = json.dumps(events)  # orjson would refuse to write the deep one
    return api_client.generic("POST", "/api/events", body, content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_rest_refuses_an_unstorable_event_with_a_422_naming_it(api_client, case):
    response = post(api_client, [event_data(), UNSTORABLE[case]()])

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["index"] == 1
    assert "stored" in error["message"] or "nested" in error["message"]
    assert domain_events().count() == 0


@pytest.mark.django_db
def test_rest_refuses_a_lone_surrogate_and_stores_a_payload_at_the_depth_limit(api_client):
    surrogate = b'[{"occurred": "2024-01-01T00:00:00Z", "event": "a.b", "id": "'
    surrogate += b'8a1b3d0e-0f4c-4d35-9a51-6d2f0f1d8b11", "resource": {"prefect.resource.id": '
    surrogate += b'"r", "x": "\\ud800"}}]'
    refused = api_client.generic("POST", "/api/events", surrogate, content_type="application/json")
    deepest = event_data(payload=nested(MAX_DEPTH - 2))

    assert 400 <= refused.status_code < 500
    assert post(api_client, [deepest]).status_code == 204
    assert domain_events().count() == 1


@pytest.mark.django_db
def test_rest_stores_a_1_4_mb_event(api_client):
    big = event_data(payload={"blob": "é" * 700_000})  # 1.4 MB of UTF-8

    assert post(api_client, [big]).status_code == 204
    assert domain_events().get().payload["blob"] == big["payload"]["blob"]


@pytest.mark.live
@pytest.mark.django_db(transaction=True)
def test_the_socket_skips_and_reports_bad_and_oversized_frames_and_stores_their_neighbours(
    server, token
):
    good = [event_data(resource_id=f"acme.order.{i}") for i in range(8)]
    big = event_data(resource_id="acme.order.big", payload={"blob": "x" * 1_400_000})
    too_big = event_data(resource_id="acme.order.too-big", payload={"blob": "x" * 1_600_000})
    bad = [UNSTORABLE[case]() for case in sorted(UNSTORABLE)]
    frames = [good[0]]
    for item, neighbour in zip([*bad, big, too_big], good[1:], strict=True):
        frames += [item, neighbour]

    url = server.url.replace("http://", "ws://") + "/api/events/in"
    with connect(url, subprotocols=["prefect"], max_size=None, open_timeout=10) as ws:
        ws.send(orjson.dumps({"type": "auth", "token": f"eventsite:{token}"}).decode())
        assert orjson.loads(ws.recv(timeout=10)) == {"type": "auth_success"}
        for frame in frames:
            ws.send(json.dumps(frame))
        # Still open: a frame sent after all of them is stored too.
        last = event_data(resource_id="acme.order.last")
        ws.send(orjson.dumps(last).decode())
        wanted = {e["id"] for e in [*good, big, last]}
        deadline = time.monotonic() + 30
        while not wanted <= accepted_ids() and time.monotonic() < deadline:
            ws.ping().wait(5)  # the socket is up all along
            time.sleep(0.05)

    assert accepted_ids() == wanted
    rejected = _rejected_when(len(bad) + 1)
    reasons = " | ".join(r.payload["reason"] for r in rejected)
    assert "nested more than" in reasons
    assert reasons.count("NUL") == len(bad) - 1
    assert "at most 1500000 bytes" in reasons
    assert all("\x00" not in r.payload["frame"] for r in rejected)


def accepted_ids() -> set[str]:
    rows = domain_events().exclude(event=REJECTED_EVENT).values_list("id", flat=True)
    return {str(i) for i in rows}


def _rejected_when(count: int) -> list[Event]:
    deadline = time.monotonic() + 10
    while True:
        rows = list(Event.objects.filter(event=REJECTED_EVENT))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


REFUSE_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON events_event WHEN NEW.event = 'acme.boom' "
        "BEGIN SELECT RAISE(ABORT, 'acme.boom is refused by the database'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
        "IF NEW.event = 'acme.boom' THEN RAISE EXCEPTION 'acme.boom is refused by the database'; "
        "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON events_event FOR EACH ROW "
        "EXECUTE FUNCTION refuse_boom()",
    ],
}
DROP_TRIGGER = {
    "sqlite": ["DROP TRIGGER IF EXISTS refuse_boom"],
    "postgresql": [
        "DROP TRIGGER IF EXISTS refuse_boom ON events_event",
        "DROP FUNCTION IF EXISTS refuse_boom()",
    ],
}


@pytest.fixture
def database_refuses_boom(transactional_db):
    with connection.cursor() as cursor:
        for sql in REFUSE_TRIGGER[connection.vendor]:
            cursor.execute(sql)
    yield
    # A background reader of the log (a live tail, the engine) may hold a lock on a partition
    # that the DROP needs on PostgreSQL's partitioned log; a deadlock aborts one side: retry.
    for attempt in range(5):
        try:
            with connection.cursor() as cursor:
                for sql in DROP_TRIGGER[connection.vendor]:
                    cursor.execute(sql)
            return
        except OperationalError:
            if attempt == 4:
                raise
            time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
async def test_a_storage_error_splits_the_batch_and_loses_no_good_event(
    token, database_refuses_boom
):
    ws = await open_socket("/api/events/in", token)
    good = [event_data(resource_id=f"acme.order.{i}") for i in range(20)]
    boom = event_data("acme.boom", "acme.order.boom")
    frames = [*good[:13], boom, *good[13:]]

    for frame in frames:  # one burst: one micro-batch, so the split is what saves the others
        await ws.send_to(text_data=orjson.dumps(frame).decode())
    await ws.disconnect()

    accepted = await wait_stored(len(good), event="acme.order.created")
    assert sorted(str(r.id) for r in accepted) == sorted(e["id"] for e in good)
    [rejected] = await stored(event="eventsite.ingest.rejected")
    assert "refused by the database" in rejected.payload["reason"]
    assert await sync_to_async(lambda: domain_events().filter(event="acme.boom").count())() == 0


@pytest.mark.django_db
def test_the_text_of_an_escape_is_not_a_nul(api_client):
    event = event_data(payload={"text": "a literal \\u0000 is six characters"})

    assert post(api_client, [event]).status_code == 204
