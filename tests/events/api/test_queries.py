from datetime import UTC, datetime, timedelta

import orjson
import pytest
from asgiref.sync import async_to_sync

from events import resource_counts
from events.ingest import ingest
from tests.factories import NOT_AUDIT, event_data

pytestmark = pytest.mark.django_db


def store(*events):
    assert ingest(list(events), source="test").ok
    return [e["id"] for e in events]


def test_pages_follow_next_page_urls_until_null_without_repeats(api_client):
    ids = store(*[event_data(resource_id=f"r{i}", ago=timedelta(seconds=i)) for i in range(120)])

    first = api_client.post(
        "/api/events/filter", {"filter": NOT_AUDIT, "limit": 50}, format="json"
    ).json()
    assert first["total"] == 120
    assert first["next_page"].startswith("http://testserver/api/events/filter/next?page-token=")
    seen = [e["id"] for e in first["events"]]
    page = first
    while page["next_page"]:
        response = api_client.get(page["next_page"])
        assert response.status_code == 200
        page = response.json()
        assert page["total"] == 120
        seen += [e["id"] for e in page["events"]]

    assert seen == ids  # newest first, each exactly once


def test_events_with_the_same_occurred_time_page_without_loss(api_client):
    at = datetime.now(UTC) - timedelta(minutes=1)
    ids = store(*[event_data(occurred=at) for _ in range(7)])

    page = api_client.post(
        "/api/events/filter", {"filter": NOT_AUDIT, "limit": 3}, format="json"
    ).json()
    seen = [e["id"] for e in page["events"]]
    while page["next_page"]:
        page = api_client.get(page["next_page"]).json()
        seen += [e["id"] for e in page["events"]]

    assert sorted(seen) == sorted(ids)
    assert len(seen) == 7


def test_the_prefect_client_default_limit_of_100_is_accepted(api_client):
    store(*[event_data() for _ in range(3)])

    response = api_client.post("/api/events/filter", {"limit": 100}, format="json")

    assert response.status_code == 200
    assert response.json()["next_page"] is None


@pytest.mark.parametrize("page_token", ["", "garbage", "eyJmaWx0ZXIiOnt9fQ"])
def test_an_invalid_page_token_is_a_403(api_client, page_token):
    response = api_client.get(f"/api/events/filter/next?page-token={page_token}")

    assert response.status_code == 403
    assert response.json()["detail"] == "Invalid page token."


def test_the_wire_shape_has_every_key_in_prefects_order(api_client):
    store(event_data())

    event = api_client.post("/api/events/filter", {}, format="json").json()["events"][0]

    assert list(event) == [
        "occurred",
        "event",
        "resource",
        "related",
        "payload",
        "id",
        "follows",
        "received",
    ]
    assert event["occurred"].endswith("Z")


def test_count_by_event_orders_by_count_then_label(api_client):
    store(event_data("b"), event_data("b"), event_data("a"), event_data("c"))

    rows = api_client.post(
        "/api/events/count-by/event", {"filter": NOT_AUDIT}, format="json"
    ).json()

    assert [(r["value"], r["count"]) for r in rows] == [("b", 2), ("a", 1), ("c", 1)]


def count_by_resource(api_client, event_filter: dict, *, estimate: bool = False) -> list[dict]:
    """count-by/resource's streamed JSON array, read here without a server."""
    response = api_client.post(
        "/api/events/count-by/resource", {"filter": event_filter}, format="json"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.get("X-Eventsite-Estimate") == ("sampled-resources" if estimate else None)

    async def read() -> bytes:
        return b"".join([chunk async for chunk in response.streaming_content])

    return orjson.loads(async_to_sync(read)())


def test_count_by_resource_labels_with_the_latest_resource_name(api_client):
    store(
        event_data(
            resource_id="r1", labels={"prefect.resource.name": "Old"}, ago=timedelta(minutes=5)
        ),
        event_data(
            resource_id="r1", labels={"prefect.resource.name": "New"}, ago=timedelta(minutes=1)
        ),
        event_data(resource_id="r2"),
    )

    rows = count_by_resource(api_client, NOT_AUDIT)

    assert [(r["value"], r["label"], r["count"]) for r in rows] == [
        ("r1", "New", 2),
        ("r2", "r2", 1),
    ]


def test_count_by_resource_orders_by_count_then_label_and_spans_each_resources_events(
    api_client,
):
    now = datetime.now(UTC).replace(microsecond=0)
    store(
        event_data(resource_id="a", labels={"prefect.name": "Ann"}, occurred=now - timedelta(1)),
        event_data(resource_id="a", labels={"prefect.name": "Al"}, occurred=now - timedelta(2)),
        # An empty name label is skipped for the next one, as on the pages.
        event_data(
            resource_id="b",
            labels={"prefect.resource.name": "", "prefect.name": "Émile"},
            occurred=now - timedelta(minutes=3),
        ),
        event_data(resource_id="c", labels={"prefect.resource.name": "bob"}),
        event_data(resource_id="z", labels={"prefect.resource.name": "Zed"}),
        event_data("other.name", resource_id="d", labels={"prefect.resource.name": "Al"}),
    )

    rows = count_by_resource(api_client, {**NOT_AUDIT, "event": {"prefix": ["acme."]}})

    assert [(r["value"], r["label"], r["count"]) for r in rows] == [
        ("a", "Ann", 2),
        # Code point order on both backends (a locale's collation would say bob, Émile, Zed).
        ("z", "Zed", 1),
        ("c", "bob", 1),
        ("b", "Émile", 1),
    ]
    assert rows[0]["start_time"] == (now - timedelta(2)).isoformat().replace("+00:00", "Z")
    assert rows[0]["end_time"] == (now - timedelta(1)).isoformat().replace("+00:00", "Z")


def test_count_by_resource_streams_every_resource_in_chunks(api_client, monkeypatch):
    monkeypatch.setattr(resource_counts, "CHUNK", 7)
    store(*[event_data(resource_id=f"r{i:02}", ago=timedelta(seconds=i)) for i in range(30)])
    store(*[event_data(resource_id="r29", ago=timedelta(seconds=40 + i)) for i in range(3)])

    rows = count_by_resource(api_client, NOT_AUDIT)

    assert [r["value"] for r in rows] == ["r29"] + [f"r{i:02}" for i in range(29)]
    assert rows[0]["count"] == 4


def test_past_its_bound_count_by_resource_counts_the_resources_of_a_sample_exactly(
    api_client, monkeypatch
):
    monkeypatch.setattr(resource_counts, "EXACT_MATCHES", 50)
    monkeypatch.setattr(resource_counts, "PER_STRATUM", 2)
    # One busy resource (every third event) among 80 quiet ones, over the last 16 minutes.
    store(
        *[
            event_data(
                resource_id="busy" if i % 3 == 0 else f"quiet.{i}",
                labels={"prefect.resource.name": "Busy"} if i % 3 == 0 else None,
                ago=timedelta(seconds=4 * i + 1),
            )
            for i in range(240)
        ]
    )
    window = {"since": (datetime.now(UTC) - timedelta(minutes=16)).isoformat()}

    rows = count_by_resource(api_client, {**NOT_AUDIT, "occurred": window}, estimate=True)

    assert (rows[0]["value"], rows[0]["label"], rows[0]["count"]) == ("busy", "Busy", 80)
    assert 1 < len(rows) <= 16 * 2  # the sample's resources, not all 161
    assert all(r["count"] == 1 for r in rows[1:])

    monkeypatch.setattr(resource_counts, "EXACT_MATCHES", 1000)
    assert len(count_by_resource(api_client, {**NOT_AUDIT, "occurred": window})) == 161


def test_count_by_resource_of_nothing_is_an_empty_array(api_client):
    assert count_by_resource(api_client, {"resource": {"id": []}, **NOT_AUDIT}) == []
    assert count_by_resource(api_client, {"resource": {"id": ["nobody"]}}) == []


def test_count_by_time_zero_fills_buckets_aligned_to_the_pivot(api_client):
    since = datetime(2026, 11, 20, 5, 30, tzinfo=UTC)
    store(
        event_data(occurred=since + timedelta(minutes=6)),
        event_data(occurred=since + timedelta(minutes=9, seconds=59, microseconds=999999)),
        event_data(occurred=since + timedelta(minutes=10)),
    )
    body = {
        "filter": {"occurred": {"since": "2026-11-20T05:32:00Z", "until": "2026-11-20T05:45:00Z"}},
        "time_unit": "minute",
        "time_interval": 5,
    }

    rows = api_client.post("/api/events/count-by/time", body, format="json").json()

    assert rows == [
        {
            "value": "0",
            "label": "2026-11-20T05:30:00+00:00",
            "count": 0,
            "start_time": "2026-11-20T05:30:00Z",
            "end_time": "2026-11-20T05:34:59.999999Z",
        },
        {
            "value": "1",
            "label": "2026-11-20T05:35:00+00:00",
            "count": 2,
            "start_time": "2026-11-20T05:35:00Z",
            "end_time": "2026-11-20T05:39:59.999999Z",
        },
        {
            "value": "2",
            "label": "2026-11-20T05:40:00+00:00",
            "count": 1,
            "start_time": "2026-11-20T05:40:00Z",
            "end_time": "2026-11-20T05:44:59.999999Z",
        },
    ]


def test_count_by_day_uses_one_day_buckets(api_client):
    store(event_data(ago=timedelta(days=1)), event_data())
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    body = {
        "filter": {"occurred": {"since": (today - timedelta(days=2)).isoformat()}, **NOT_AUDIT},
        "time_unit": "hour",
    }

    rows = api_client.post("/api/events/count-by/day", body, format="json").json()

    assert len(rows) == 3
    assert sum(r["count"] for r in rows) == 2


def test_more_than_1000_buckets_is_a_422(api_client):
    body = {
        "filter": {"occurred": {"since": "2026-11-01T00:00:00Z", "until": "2026-11-08T00:00:00Z"}},
        "time_unit": "second",
    }

    response = api_client.post("/api/events/count-by/time", body, format="json")

    assert response.status_code == 422
    assert "too many" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/events/count-by/flavour", {"filter": {}}),
        ("/api/events/count-by/event", {}),
        ("/api/events/count-by/time", {"filter": {}, "time_unit": "fortnight"}),
        ("/api/events/count-by/time", {"filter": {}, "time_interval": 0}),
    ],
)
def test_bad_count_requests_are_a_422(api_client, path, body):
    assert api_client.post(path, body, format="json").status_code == 422
