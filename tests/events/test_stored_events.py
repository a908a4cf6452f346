"""Stored events read back for the engine and the replay: the same events, decoded on use."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC

import pytest

from events import queries
from events.ingest import ingest
from events.schema import Event
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db


def test_an_event_read_back_is_the_event_stored_whatever_field_is_read_first():
    leader = uuid.uuid4()
    data = event_data(
        "acme.order.failed",
        "acme.order.1",
        labels={"acme.region": "eu"},
        related=[related("acme.customer.7", "customer", tier="gold")],
        payload={"reason": "card declined", "amount": 12.5},
        follows=leader,
    )
    assert ingest([data], source="test").ok
    (first,) = queries.read_after(None, limit=10)
    (second,) = queries.read_after(None, limit=10)
    # The labels before anything else, the payload before the labels: the same values.
    assert first.resource == {"prefect.resource.id": "acme.order.1", "acme.region": "eu"}
    assert second.payload == {"reason": "card declined", "amount": 12.5}
    for event in (first, second):
        assert event.related == data["related"]
        assert event.resource["acme.region"] == "eu"
        assert event.payload["amount"] == 12.5
        assert str(event.id) == data["id"] and event.follows == leader
        assert event.occurred.tzinfo is not None and event.received.tzinfo is not None
        assert event.occurred.astimezone(UTC).isoformat() == data["occurred"]
    # Equal to the plain event with the same fields, both ways round, and copied as one.
    plain = Event(**{f.name: getattr(first, f.name) for f in dataclasses.fields(Event)})
    assert first == plain and plain == first and first == second
    assert first != dataclasses.replace(plain, event="acme.order.paid")
    assert dataclasses.replace(first, event="acme.order.paid").event == "acme.order.paid"


def test_a_replay_read_leaves_the_payload_out():
    data = event_data("acme.order.failed", "acme.order.1", payload={"big": "x" * 1000})
    assert ingest([data], source="test").ok
    (event,) = queries.received_in(queries.oldest_received(), queries.last_received()[0], limit=10)
    assert event.payload == {} and event.resource["prefect.resource.id"] == "acme.order.1"


def test_a_replay_read_without_labels_reads_them_when_asked():
    data = event_data(
        "acme.order.failed",
        "acme.order.1",
        labels={"acme.region": "eu"},
        related=[related("acme.customer.7", "customer")],
    )
    assert ingest([data], source="test").ok
    (event,) = queries.received_in(
        queries.oldest_received(), queries.last_received()[0], labels=False, limit=10
    )
    assert event.event == "acme.order.failed" and str(event.id) == data["id"]
    assert event.resource == data["resource"] and event.related == data["related"]
    assert event.payload == {}
