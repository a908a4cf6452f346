"""The feed at a glance: severity, readable resources, clock times, chips with names, and the
chart of counts by event (issue 15), through the real views and database."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from events.ingest import ingest
from tests.conftest import empty_cache
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

FEED = "/events/"


@pytest.fixture(autouse=True)
def _fresh_cache():
    empty_cache()


def store(*items):
    result = ingest(list(items), source="test", allow_reserved=True)
    assert result.ok, result.rejected
    return result.stored


def row(page: str, event_id) -> str:
    start = page.index(f'id="ev-{event_id}"')
    return page[page.rindex("<article", 0, start) : page.index("</article>", start)]


def test_rows_carry_their_severity_from_the_one_rule(logged_in_client):
    failed, completed, custom, labelled, plain = store(
        event_data("prefect.flow-run.Failed", "prefect.flow-run.1"),
        event_data("prefect.flow-run.Completed", "prefect.flow-run.2"),
        event_data("billing.sync.error", "billing.sync.1"),
        event_data(
            "prefect.flow-run.Unlucky",
            "prefect.flow-run.3",
            labels={"prefect.state-type": "CRASHED"},
        ),
        event_data("acme.order.created", "acme.order.1"),
    )

    page = logged_in_client.get(FEED).content.decode()

    assert 'class="ev sev-failed"' in row(page, failed.id)
    assert 'class="ev sev-completed"' in row(page, completed.id)
    assert 'class="ev sev-failed"' in row(page, custom.id)
    assert 'class="ev sev-failed"' in row(page, labelled.id)
    assert 'class="ev sev-other"' in row(page, plain.id)


def test_a_row_shows_related_resources_whole_grouped_by_role_with_links(logged_in_client):
    (event,) = store(
        event_data(
            "prefect.flow-run.Completed",
            "prefect.flow-run.7",
            labels={"prefect.resource.name": "golden-gecko"},
            related=[
                related("prefect.tag.prod", "tag"),
                related(
                    "prefect.deployment.9",
                    "deployment",
                    **{"prefect.resource.name": "nightly-warehouse-load"},
                ),
                related(
                    "prefect.flow.3", "flow", **{"prefect.resource.name": "etl-orders-and-invoices"}
                ),
                related("prefect.tag.eu", "tag"),
                related("prefect.worker.20e75103-aaaa-bbbb-cccc-1234567890ab", "worker"),
            ],
            payload={"intended": {"from": "RUNNING", "to": "COMPLETED"}, "validated_state": {}},
        )
    )

    html = row(logged_in_client.get(FEED).content.decode(), event.id)

    # Flow and deployment first, tags last; whole names; the id in the tooltip; a filter link.
    roles = re.findall(r'<span class="role">([^<]+)</span>', html)
    assert roles == ["flow", "deployment", "worker", "tag"]
    assert (
        '<a class="badge" href="/events/?related=prefect.flow.3" title="flow: prefect.flow.3">'
        "etl-orders-and-invoices</a>" in html
    )
    assert ">nightly-warehouse-load</a>" in html
    assert ">prod</a>" in html and ">eu</a>" in html
    # A resource without a name shows its id, cut in the middle, never its kind alone.
    assert 'class="badge unnamed"' in html and '<span class="mid-tail">34567890ab</span>' in html
    # The resource's name links to its page.
    assert (
        '<a class="res" href="/resources/prefect.flow-run.7/"' in html
        and ">golden-gecko</a>" in html
    )
    # The state change's payload is what the name already says: not repeated in the preview.
    assert '<span class="ev-preview"></span>' in html


def test_rows_show_a_clock_time_with_the_full_time_in_the_tooltip(logged_in_client):
    occurred = datetime(2026, 3, 4, 14, 2, 11, 123000, tzinfo=UTC)
    (event,) = store(event_data(occurred=occurred))

    html = row(
        logged_in_client.get(
            FEED, {"since": "2026-03-04T00:00:00Z", "until": "2026-03-05T00:00:00Z"}
        ).content.decode(),
        event.id,
    )

    # UTC until the browser's pages.js reads it in the person's time zone.
    assert re.search(
        r'<time class="ev-time" datetime="2026-03-04T14:02:11.123000Z" '
        r'title="2026-03-04 14:02:11.123 UTC">14:02:11</time>',
        html,
    )
    assert '<span class="ev-ago" data-relative' in html


def test_resource_chips_show_names_and_keep_the_id_in_the_tooltip(logged_in_client):
    store(
        event_data(
            "acme.order.created",
            "acme.order.31",
            labels={"prefect.resource.name": "Order 31"},
            related=[related("acme.customer.7", "customer", **{"prefect.resource.name": "ACME"})],
        )
    )

    page = logged_in_client.get(
        FEED, {"resource": ["acme.order.31", "acme.order.*"], "related": "acme.customer.7"}
    ).content.decode()

    chips = page[page.index('class="chips"') : page.index("Clear all")]
    assert '<span class="chip-name" title="acme.order.31">Order 31</span>' in chips
    assert '<span class="chip-name" title="acme.customer.7">ACME</span>' in chips
    assert "<code>acme.order.*</code>" in chips  # a prefix has no name
    assert 'aria-label="Remove resource Order 31"' in chips


def test_the_feed_charts_the_top_event_names_each_a_filter_link(logged_in_client):
    store(
        *[event_data("acme.order.created", f"acme.order.{i}") for i in range(3)],
        event_data("acme.job.failed", "acme.job.1"),
        event_data("prefect.flow-run.Completed", "prefect.flow-run.1"),
        event_data("prefect-cloud.user.logged-in", "prefect-cloud.user.1"),  # audit: not here
    )

    page = logged_in_client.get(FEED, {"range": "1h", "exclude": "prefect.*"}).content.decode()

    # Names and time only: the chart comes with the page, from the picker's counts.
    chart = _chart(page)
    names = re.findall(r"<code>([^<]+)</code><span class=\"count\">(\d+)</span>", chart)
    assert names == [("acme.order.created", "3"), ("acme.job.failed", "1")]
    assert (
        '<li class="sev-failed"><a href="/events/?range=1h&amp;exclude=prefect.%2A'
        '&amp;event=acme.job.failed"' in chart
    )


def test_a_chart_that_needs_a_scan_loads_after_the_page(logged_in_client):
    store(
        *[event_data("acme.order.created", f"acme.order.{i}") for i in range(3)],
        event_data("acme.job.failed", "acme.order.9"),
        event_data("acme.job.failed", "other.thing.1"),
    )

    page = logged_in_client.get(FEED, {"range": "1h", "resource": "acme.order.*"}).content.decode()

    assert 'hx-get="/events/names/?range=1h&amp;resource=acme.order.%2A" hx-trigger="load"' in page
    chart = _chart(
        logged_in_client.get(
            "/events/names/", {"range": "1h", "resource": "acme.order.*"}
        ).content.decode()
    )
    names = re.findall(r"<code>([^<]+)</code><span class=\"count\">(\d+)</span>", chart)
    assert names == [("acme.order.created", "3"), ("acme.job.failed", "1")]
    assert 'href="/events/?range=1h&amp;resource=acme.order.%2A&amp;event=acme.job.failed"' in chart


def _chart(page: str) -> str:
    start = page.index('id="top-names-heading"')
    return page[start : page.index("</section>", start)]


def test_export_save_view_and_copy_link_are_in_the_feed_header(logged_in_client):
    page = logged_in_client.get(
        FEED, {"range": "1h", "event": "acme.*", "after": "x"}
    ).content.decode()

    assert 'href="/events/export/?range=1h&amp;event=acme.%2A&amp;format=csv"' in page
    assert 'href="/events/export/?range=1h&amp;event=acme.%2A&amp;format=jsonl"' in page
    assert "at most 100,000" in page
    assert '<input type="hidden" name="query" value="range=1h&amp;event=acme.%2A">' in page
    assert 'data-copy="http://testserver/events/?range=1h&amp;event=acme.%2A"' in page
