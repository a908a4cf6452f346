"""`/resources/<id>/`: a resource's labels, timeline, counts by event and company."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from events.ingest import ingest
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

FLOW_RUN = "prefect.flow-run.0f0f"


def store(*items):
    result = ingest(list(items), source="test")
    assert result.ok, result.rejected
    return result.stored


@pytest.fixture
def run():
    now = datetime.now(UTC)
    own = store(
        event_data(
            "prefect.flow-run.Running",
            FLOW_RUN,
            labels={"prefect.resource.name": "golden-gecko", "prefect.state-type": "RUNNING"},
            related=[related("prefect.flow.9", "flow", **{"prefect.resource.name": "etl"})],
            occurred=now - timedelta(minutes=5),
        ),
        event_data(
            "prefect.flow-run.Failed",
            FLOW_RUN,
            labels={"prefect.resource.name": "golden-gecko", "prefect.state-type": "FAILED"},
            related=[related("prefect.flow.9", "flow", **{"prefect.resource.name": "etl"})],
            occurred=now - timedelta(minutes=1),
        ),
    )
    tasks = store(
        event_data(
            "prefect.task-run.Completed",
            "prefect.task-run.1",
            labels={"prefect.resource.name": "extract"},
            related=[related(FLOW_RUN, "flow-run", **{"prefect.resource.name": "golden-gecko"})],
            occurred=now - timedelta(minutes=3),
        ),
    )
    store(event_data("acme.other", "acme.other.1"))
    return own, tasks


def test_resource_page_needs_a_login(client, run):
    assert client.get(f"/resources/{FLOW_RUN}/").status_code == 302


def test_an_unknown_resource_is_a_404(logged_in_client):
    assert logged_in_client.get("/resources/nobody.ever/").status_code == 404


def test_the_page_names_the_resource_and_shows_its_latest_labels(logged_in_client, run):
    (running, failed), _ = run

    page = logged_in_client.get(f"/resources/{FLOW_RUN}/").content.decode()

    assert re.search(r'<h1><span class="kind">Flow run</span> golden-gecko</h1>', page)
    assert '<dt class="mono">prefect.state-type</dt><dd class="mono">FAILED</dd>' in page
    assert f'href="/automations/new/?event={failed.id}"' in page  # "Automate this resource"
    assert f'href="/events/?resource={FLOW_RUN}&amp;range=7d"' in page
    assert f'href="/events/?related={FLOW_RUN}&amp;range=7d"' in page


def test_the_timeline_holds_its_own_events_and_those_naming_it_newest_first(logged_in_client, run):
    (running, failed), (task,) = run

    page = logged_in_client.get(f"/resources/{FLOW_RUN}/").content.decode()

    timeline = page[page.index('id="timeline"') : page.index('id="labels-heading"')]
    assert re.findall(r'id="ev-([0-9a-f-]+)"', timeline) == [
        str(failed.id),
        str(task.id),
        str(running.id),
    ]
    assert '<span class="note">as flow-run</span>' in timeline
    assert "acme.other" not in timeline


def test_counts_by_event_and_neighbours_link_onwards(logged_in_client, run):
    page = logged_in_client.get(f"/resources/{FLOW_RUN}/").content.decode()

    counts = page[page.index('id="counts-heading"') : page.index('id="neighbours-heading"')]
    assert re.findall(r"<code>([^<]+)</code>", counts) == [
        "prefect.flow-run.Failed",
        "prefect.flow-run.Running",
        "prefect.task-run.Completed",
    ]
    assert (
        f'href="/events/?resource={FLOW_RUN}&amp;event=prefect.flow-run.Failed&amp;range=7d"'
        in counts
    )
    assert (
        f'href="/events/?related={FLOW_RUN}&amp;event=prefect.task-run.Completed&amp;range=7d"'
        in counts
    )
    neighbours = page[page.index('id="neighbours-heading"') :]
    assert re.search(
        r'flow</span> <a class="rel-name" href="/resources/prefect.flow.9/"[^>]*>etl</a> <span class="count">2×',
        neighbours,
    )
    assert 'href="/resources/prefect.task-run.1/"' in neighbours


def test_the_timeline_loads_more_in_keyset_pages(logged_in_client):
    now = datetime.now(UTC)
    store(
        *[
            event_data("acme.tick", "acme.clock", occurred=now - timedelta(seconds=i))
            for i in range(60)
        ]
    )

    first = logged_in_client.get("/resources/acme.clock/").content.decode()
    more = re.search(r'id="load-more" class="load-more" href="([^"]+)"', first)[1].replace(
        "&amp;", "&"
    )
    second = logged_in_client.get("/resources/acme.clock/" + more, HTTP_HX_REQUEST="true")

    assert len(re.findall(r'id="ev-', first)) == 50
    assert second.status_code == 200 and "<html" not in second.content.decode()
    ids = re.findall(r'id="ev-([0-9a-f-]+)"', second.content.decode())
    assert len(ids) == 10 and not set(ids) & set(re.findall(r'id="ev-([0-9a-f-]+)"', first))


def test_ids_with_odd_characters_round_trip_and_render_inert(logged_in_client):
    odd = "acme.<b>x</b>?y#z"
    store(
        event_data(resource_id=odd, labels={"prefect.resource.name": "<script>alert(1)</script>"})
    )

    feed = logged_in_client.get("/events/").content.decode()
    href = re.search(r'<a class="res" href="(/resources/[^"]+)"', feed)[1]
    page = logged_in_client.get(href)

    assert page.status_code == 200
    html = page.content.decode()
    assert "<script>alert" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_automating_a_resource_seen_only_as_related_prefills_its_role(logged_in_client, run):
    page = logged_in_client.get("/resources/prefect.flow.9/").content.decode()

    href = re.search(r'id="automate" href="([^"]+)"', page)[1].replace("&amp;", "&")
    assert href == "/automations/new/?resource=prefect.flow.9&role=flow"
    form = logged_in_client.get(href)
    assert form.status_code == 200
    assert form.context["form"].initial["related_resource"] == "prefect.flow.9"
    assert form.context["form"].initial["related_role"] == "flow"
