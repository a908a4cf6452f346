"""A deadline on every read a request runs: the query is stopped and the answer is 503."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection

from events.api.sockets import BACKFILL_TOO_SLOW
from events.ingest import ingest
from eventsite.query_deadline import PROGRESS_STEPS, QueryDeadline, is_timeout
from tests.events.api.test_sockets import closed_with, open_socket
from tests.factories import event_data

# Enough events that a full scan runs past the first look at the clock on SQLite (its progress
# handler looks every `PROGRESS_STEPS` VM steps; a scan costs a few steps per row).
SCANNED = 4 * PROGRESS_STEPS // 10
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.mark.django_db
def test_an_endless_read_is_stopped_at_the_deadline():
    started = time.monotonic()
    with (
        pytest.raises(OperationalError) as raised,
        connection.execute_wrapper(QueryDeadline(0.2)),
        connection.cursor() as cursor,
    ):
        cursor.execute(ENDLESS)

    assert is_timeout(raised.value)
    assert time.monotonic() - started < 5


@pytest.mark.django_db
def test_writes_are_not_under_the_deadline():
    deadline = QueryDeadline(0.000_001)
    with connection.execute_wrapper(deadline):
        result = ingest([event_data(payload={"n": i}) for i in range(300)], source="test")
    deadline.reset()

    assert len(result.stored) == 300


@pytest.mark.django_db(transaction=True)
def test_a_query_past_the_deadline_is_a_503_with_the_reason(api_client, settings):
    ingest(
        [event_data(resource_id=f"acme.order.{i}", payload={"i": i}) for i in range(SCANNED)],
        source="test",
    )
    settings.EVENTSITE_QUERY_TIMEOUT = timedelta(microseconds=1)
    filter_ = {"filter": {"text": {"query": "nothing matches this"}}}

    slow = api_client.post("/api/events/filter", filter_, format="json")
    settings.EVENTSITE_QUERY_TIMEOUT = timedelta(seconds=10)
    fine = api_client.post("/api/events/filter", filter_, format="json")

    assert slow.status_code == 503
    assert "took longer than" in slow.json()["detail"]
    assert fine.status_code == 200


@pytest.mark.django_db(transaction=True)
async def test_a_subscription_whose_backfill_is_too_slow_is_closed_1013_with_the_reason(
    token, settings
):
    await sync_to_async(ingest)(
        [event_data(resource_id=f"acme.order.{i}", payload={"i": i}) for i in range(SCANNED)],
        source="test",
    )
    settings.EVENTSITE_QUERY_TIMEOUT = timedelta(microseconds=1)
    ws = await open_socket("/api/events/out", token)

    await ws.send_json_to({"type": "filter", "filter": {"text": {"query": "nothing matches"}}})

    assert await closed_with(ws) == (1013, BACKFILL_TOO_SLOW)
