"""One event's page (`/events/<id>/`)."""

from __future__ import annotations

import re
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
    # The title says what happened to what; the label and the full name are there too.
    assert re.search(
        r"<h1><span class=\"sev\"[^>]*></span>Flow run crimson-fox completed</h1>", page
    )
    assert "Flow Run Completed" in page
    assert '<code class="mono full-name">prefect.flow-run.Completed</code>' in page
    assert 'href="/resources/prefect.flow-run.abc/"' in page
    assert '<dt class="mono">env</dt><dd class="mono">prod</dd>' in page
    assert 'href="/events/?resource=prefect.flow-run.abc&amp;range=30d"' in page
    assert 'href="/events/?related=prefect.flow.1&amp;range=30d"' in page
    # Related resources: one line each, role first, linking to their resource pages.
    assert re.search(
        r'<li>\s*<span class="badge role-badge">flow</span>\s*<a class="rel-name" '
        r'href="/resources/prefect.flow.1/"[^>]*>etl</a>',
        page,
    )
    assert '<span class="badge role-badge">tag</span>' in page
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


def test_detail_tells_the_whole_follows_chain_both_ways(logged_in_client):
    now = datetime.now(UTC)
    (zero,) = store(event_data("a.zero", "r.0", occurred=now - timedelta(seconds=40)))
    (first,) = store(
        event_data("a.first", "r.1", occurred=now - timedelta(seconds=30), follows=zero.id)
    )
    (second,) = store(event_data("a.second", "r.2", occurred=now - timedelta(seconds=20)))
    store(event_data("b.unrelated", "r.3"))
    (middle,) = store(
        event_data("a.middle", "r.m", occurred=now - timedelta(seconds=25), follows=first.id)
    )
    (after,) = store(
        event_data("a.after", "r.4", occurred=now - timedelta(seconds=5), follows=middle.id)
    )
    (later,) = store(
        event_data("a.later", "r.5", occurred=now - timedelta(seconds=2), follows=after.id)
    )

    page = logged_in_client.get(f"/events/{middle.id}/").content.decode()

    story = page[page.index('id="story-heading"') :]
    order = re.findall(r'id="ev-([0-9a-f-]+)"', story)
    assert order == [str(zero.id), str(first.id), str(middle.id), str(after.id), str(later.id)]
    assert str(second.id) not in story
    notes = re.findall(r'<span class="note">([^<]+)</span>', story)
    assert notes == [
        "before in chain",
        "before in chain",
        "this event",
        "after in chain",
        "after in chain",
    ]


def test_detail_of_an_event_following_a_missing_one_says_so(logged_in_client):
    missing = uuid.uuid4()
    (event,) = store(event_data(follows=missing))

    page = logged_in_client.get(f"/events/{event.id}/").content.decode()

    assert f'It follows <code class="mono">{missing}</code>, which is not stored' in page


def test_detail_story_lists_the_other_events_of_the_same_resource(logged_in_client):
    mine = store(*[event_data(f"acme.step{i}", "acme.job.1") for i in range(3)])
    store(event_data("acme.other", "acme.job.2"))

    page = logged_in_client.get(f"/events/{mine[0].id}/").content.decode()

    story = page[page.index('id="story-heading"') :]
    assert f'id="ev-{mine[1].id}"' in story and f'id="ev-{mine[2].id}"' in story
    assert "acme.other" not in story


def test_detail_of_a_flow_run_lists_the_events_of_its_task_runs(logged_in_client):
    flow_run = "prefect.flow-run.0f0f"
    (running,) = store(
        event_data(
            "prefect.flow-run.Running",
            flow_run,
            labels={"prefect.resource.name": "golden-gecko", "prefect.state-type": "RUNNING"},
        )
    )
    tasks = store(
        *[
            event_data(
                f"prefect.task-run.{state}",
                f"prefect.task-run.{n}",
                labels={"prefect.resource.name": f"extract-{n}"},
                related=[
                    related(flow_run, "flow-run", **{"prefect.resource.name": "golden-gecko"})
                ],
            )
            for n, state in ((1, "Completed"), (2, "Failed"))
        ]
    )
    store(event_data("prefect.task-run.Completed", "prefect.task-run.9"))  # another run's task

    page = logged_in_client.get(f"/events/{running.id}/").content.decode()

    runs = page[page.index('id="runs-heading"') :]
    assert "task run" in runs
    assert 'href="/resources/prefect.task-run.1/"' in runs and "extract-1" in runs
    assert all(f'id="ev-{t.id}"' in runs for t in tasks)
    assert "prefect.task-run.9" not in runs
    assert f'<article class="ev sev-failed" id="ev-{tasks[1].id}"' in runs


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
