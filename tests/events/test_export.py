"""Export of the feed's current filter as CSV or JSON Lines (`/events/export/`), streamed."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from asgiref.sync import async_to_sync

from events import export
from events.ingest import ingest
from events.models import ApiToken, Event
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

EXPORT = "/events/export/"


def store(*items):
    result = ingest(list(items), source="test")
    assert result.ok, result.rejected
    return result.stored


def body(response) -> str:
    """The streamed body (an async iterator, as ASGI needs), read here without a server."""
    assert response.status_code == 200, response.content

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(read)().decode()


@pytest.fixture
def events():
    now = datetime.now(UTC)
    return store(
        event_data(
            "acme.order.created",
            "acme.order.1",
            labels={"prefect.resource.name": "Order 1"},
            related=[related("acme.customer.7", "customer")],
            payload={"amount": 10, "note": '=HYPERLINK("http://x")'},
            occurred=now - timedelta(minutes=2),
        ),
        event_data("acme.order.created", "acme.order.2", occurred=now - timedelta(minutes=1)),
        event_data("acme.job.failed", "=cmd|' /C calc'!A0", occurred=now - timedelta(minutes=3)),
    )


def test_export_needs_a_login(client):
    assert client.get(EXPORT).status_code == 302


def test_csv_export_has_a_header_and_the_filtered_events_newest_first(logged_in_client, events):
    response = logged_in_client.get(EXPORT, {"event": "acme.order.created", "format": "csv"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="events-')
    assert response["X-Export-Limit"] == "100000"
    rows = list(csv.DictReader(io.StringIO(body(response))))
    assert [r["id"] for r in rows] == [str(events[1].id), str(events[0].id)]
    first = rows[1]
    assert first["event"] == "acme.order.created"
    assert first["resource_id"] == "acme.order.1" and first["resource_name"] == "Order 1"
    assert first["related"] == "customer:acme.customer.7"
    assert orjson.loads(first["payload"]) == {"amount": 10, "note": '=HYPERLINK("http://x")'}


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_as_text(logged_in_client, events):
    rows = list(
        csv.DictReader(
            io.StringIO(body(logged_in_client.get(EXPORT, {"event": "acme.job.failed"})))
        )
    )

    assert rows[0]["resource_id"] == "'=cmd|' /C calc'!A0"


def test_jsonl_export_is_one_wire_event_per_line(logged_in_client, events):
    response = logged_in_client.get(EXPORT, {"format": "jsonl", "resource": "acme.order.*"})

    assert response["Content-Type"] == "application/x-ndjson"
    lines = [orjson.loads(line) for line in body(response).splitlines()]
    assert [line["id"] for line in lines] == [str(events[1].id), str(events[0].id)]
    assert lines[1]["resource"]["prefect.resource.name"] == "Order 1"
    assert set(lines[0]) >= {
        "occurred",
        "event",
        "resource",
        "related",
        "payload",
        "id",
        "received",
    }


async def test_the_stream_stops_at_its_limit_across_pages(monkeypatch):
    written = []

    def page(event_filter, *, after, size):
        # Pages of whatever size is asked; each one continues after the previous.
        start = 0 if after is None else int(after[1].hex, 16) + 1
        return [_fake(i) for i in range(start, start + size)]

    monkeypatch.setattr(export.page_queries, "export_page", page)
    monkeypatch.setattr(export, "CHUNK", 4)
    async for chunk in export.stream(None, kind="jsonl", limit=10):
        written.append(chunk)

    lines = "".join(written).splitlines()
    assert len(lines) == 10
    assert len(written) == 3  # 4 + 4 + 2


def _fake(i: int) -> Event:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Event(
        id=uuid.UUID(int=i),
        occurred=now,
        received=now,
        event="e",
        resource_id="r",
        resource={"prefect.resource.id": "r"},
        related=[],
        payload={},
    )


def test_a_bad_format_or_filter_is_a_400_that_says_why(logged_in_client):
    bad_format = logged_in_client.get(EXPORT, {"format": "xml"})
    bad_filter = logged_in_client.get(EXPORT, {"label": "nonsense"})

    assert bad_format.status_code == 400 and b"csv or jsonl" in bad_format.content
    assert bad_filter.status_code == 400 and b"is not a label filter" in bad_filter.content


def test_the_audit_export_holds_the_audit_trail_only(logged_in_client, events):
    lines = body(logged_in_client.get("/audit/export/", {"format": "jsonl"})).splitlines()

    assert lines and all(orjson.loads(line)["event"].startswith("prefect-cloud.") for line in lines)


@pytest.mark.live
def test_export_streams_through_the_server(server, django_user_model):
    person = django_user_model.objects.create_user("pat", "pat@example.com", "pw")
    _, secret = ApiToken.issue(person, name="export")
    now = datetime.now(UTC)
    batch = [
        event_data(resource_id=f"r.{i}", occurred=now - timedelta(seconds=i)) for i in range(2500)
    ]
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"})
    assert api.post("/api/events", json=batch).status_code == 204
    web = httpx.Client(base_url=server.url)
    login = web.get("/accounts/login/")
    web.post(
        "/accounts/login/",
        data={
            "username": "pat",
            "password": "pw",
            "csrfmiddlewaretoken": login.cookies["csrftoken"],
        },
        headers={"Referer": f"{server.url}/accounts/login/"},
    )

    with web.stream("GET", "/events/export/", params={"format": "csv", "range": "1h"}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # streamed, not built whole
        lines = [line for chunk in response.iter_lines() for line in [chunk] if line]

    assert lines[0].startswith("occurred,event,resource_id")
    assert len(lines) == 1 + 2500
