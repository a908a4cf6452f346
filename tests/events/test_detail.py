"""One event's page (`/events/<id>/`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events.ingest import ingest
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db


def store(*items):
    result = ingest(list(items), source="test")
    assert result.ok, result.rejected
    return result.stored


def test_detail_requires_login(client):
    (event,) = store(event_data())

    response = client.get(f"/events/{event.id}/")

    assert response.status_code == 302


def test_detail_of_an_unknown_id_is_404(logged_in_client):
    response = logged_in_client.get(f"/events/{uuid.uuid4()}/")

    assert response.status_code == 404


def test_detail_shows_resource_related_payload_and_actions(logged_in_client):
    (event,) = store(
        event_data(
            "prefect.flow-run.Completed",
            "prefect.flow-run.abc",
            labels={"prefect.resource.name": "crimson-fox", "env": "prod"},
            related=[
                related("prefect.flow.1", "flow", **{"prefect.resource.name": "etl"}),
                related("prefect.tag.nightly", "tag"),
            ],
            payload={"state": {"type": "COMPLETED"}, "n": 3},
        )
    )

    response = logged_in_client.get(f"/events/{event.id}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Flow Run Completed</h1>" in page
    assert "crimson-fox" in page
    assert '<dt class="mono">env</dt><dd class="mono">prod</dd>' in page
    assert 'href="/events/?resource=prefect.flow-run.abc&amp;range=30d"' in page
    assert 'href="/events/?related=prefect.flow.1&amp;range=30d"' in page
    assert '<span class="role">flow</span>' in page and '<span class="role">tag</span>' in page
    assert "&quot;type&quot;: &quot;COMPLETED&quot;" in page  # pretty JSON, escaped
    assert f'href="/automations/new/?event={event.id}"' in page
    assert f'data-copy="{event.id}"' in page
    assert "Occurred" in page and "Received" in page


def test_detail_raw_tab_shows_the_wire_json(logged_in_client):
    (event,) = store(event_data(payload={"k": "v"}))

    response = logged_in_client.get(f"/events/{event.id}/", {"tab": "raw"})

    assert response.status_code == 200
    page = response.content.decode()
    assert '<pre class="code json" id="raw-json">' in page
    assert f"&quot;id&quot;: &quot;{event.id}&quot;" in page
    assert "&quot;received&quot;:" in page


def test_detail_shows_the_follows_chain_both_ways(logged_in_client):
    now = datetime.now(UTC)
    first, second, third = store(
        event_data("a.first", occurred=now - timedelta(seconds=30)),
        event_data("a.second", occurred=now - timedelta(seconds=20)),
        event_data("a.third", occurred=now - timedelta(seconds=10)),
    )
    store(event_data("b.unrelated"))
    # Rebuild with follows links (the ids must exist first for the chain to resolve).
    (middle,) = store(
        event_data("a.middle", occurred=now - timedelta(seconds=25), follows=first.id)
    )
    (after,) = store(event_data("a.after", occurred=now - timedelta(seconds=5), follows=middle.id))

    page = logged_in_client.get(f"/events/{middle.id}/").content.decode()

    follows_section = page[page.index("<h2>Follows</h2>") : page.index("Other events for")]
    assert f'id="ev-{first.id}"' in follows_section
    assert f'id="ev-{after.id}"' in follows_section
    assert f'id="ev-{second.id}"' not in follows_section


def test_detail_of_an_event_following_a_missing_one_says_so(logged_in_client):
    missing = uuid.uuid4()
    (event,) = store(event_data(follows=missing))

    page = logged_in_client.get(f"/events/{event.id}/").content.decode()

    assert f'It follows <code class="mono">{missing}</code>, which is not stored' in page


def test_detail_lists_other_events_for_the_same_resource(logged_in_client):
    mine = store(*[event_data(f"acme.step{i}", "acme.job.1") for i in range(3)])
    store(event_data("acme.other", "acme.job.2"))

    page = logged_in_client.get(f"/events/{mine[0].id}/").content.decode()

    section = page[page.index("Other events for this resource") :]
    assert f'id="ev-{mine[1].id}"' in section and f'id="ev-{mine[2].id}"' in section
    assert "acme.other" not in section


@pytest.mark.parametrize("tab", ["details", "raw"])
def test_untrusted_values_render_inert_on_the_detail_page(logged_in_client, tab):
    (event,) = store(
        event_data(
            "acme.<script>alert(1)</script>",
            "javascript:alert(1)",
            labels={
                "prefect.resource.name": "<img src=x onerror=alert(1)>",
                "<script>k</script>": "javascript:alert(2)",
            },
            related=[related("javascript:alert(3)", "<i>r</i>")],
            payload={"html": "<script>alert(4)</script>", "x": "<img src=x onerror=alert(5)>"},
        )
    )

    response = logged_in_client.get(f"/events/{event.id}/", {"tab": tab})

    assert response.status_code == 200
    page = response.content.decode()
    assert "<script>alert" not in page and "<script>k" not in page
    assert "<img src=x" not in page
    assert "<i>r</i>" not in page
    assert 'href="javascript:' not in page
    assert "&lt;script&gt;" in page


def test_detail_renders_a_one_megabyte_event(logged_in_client):
    (event,) = store(event_data(payload={"blob": "x" * 1_000_000}))

    response = logged_in_client.get(f"/events/{event.id}/")

    assert response.status_code == 200
    assert response.content.count(b"x" * 1000) >= 900
