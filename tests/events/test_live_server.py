import httpx
import pytest

from events.models import ApiToken, Event
from tests.factories import event_data

pytestmark = pytest.mark.live


def test_serve_stores_posted_events_and_answers_queries_end_to_end(server, user):
    _, secret = ApiToken.issue(user, name="live")
    headers = {"Authorization": f"Bearer {secret}"}
    events = [event_data(resource_id=f"acme.order.{i}") for i in range(3)]

    response = httpx.post(f"{server.url}/api/events", json=events, headers=headers)

    assert response.status_code == 204
    # Issuing the token stored an audit event too; count the posted ones.
    assert Event.objects.filter(event="acme.order.created").count() == 3
    acme = {"event": {"prefix": ["acme."]}}
    found = httpx.post(
        f"{server.url}/api/events/filter", json={"limit": 2, "filter": acme}, headers=headers
    ).json()
    assert found["total"] == 3
    assert len(found["events"]) == 2
    assert found["next_page"].startswith(f"{server.url}/api/events/filter/next?page-token=")
    rest = httpx.get(found["next_page"], headers=headers).json()
    assert {e["id"] for e in found["events"] + rest["events"]} == {e["id"] for e in events}
    assert rest["next_page"] is None


def test_serve_rejects_requests_without_a_token(server):
    response = httpx.post(f"{server.url}/api/events", json=[])

    assert response.status_code == 401
    assert "detail" in response.json()


def test_health_and_version_answer_without_a_token(server):
    assert httpx.get(f"{server.url}/api/health").json() is True
    assert httpx.get(f"{server.url}/api/admin/version").json() == "3.9.1"
