"""The feed page (`/events/`) and its htmx partials, through the real views and database."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse

from events import queries, volume
from events.filters import EventFilter
from events.forms import HIDDEN_BY_DEFAULT, FeedFilterSet
from events.ingest import ingest
from events.models import ApiToken
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

FEED = "/events/"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The feed caches settled histogram buckets; each test starts from an empty cache.
    cache.clear()


def store(*items):
    result = ingest(list(items), source="test")
    assert result.ok, result.rejected
    return result.stored


def row_ids(response) -> list[str]:
    return re.findall(r'<article class="ev[^"]*" id="ev-([0-9a-f-]+)"', response.content.decode())


def test_feed_requires_login(client):
    response = client.get(FEED)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_root_redirects_to_the_feed(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/events/"


def test_login_page_renders_and_logs_in(client, user):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'name="password"' in page.content

    response = client.post(
        reverse("login"), {"username": "alice", "password": "correct horse battery"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/events/"


def test_logout_is_a_post_form_in_the_layout(logged_in_client):
    page = logged_in_client.get(FEED).content.decode()
    assert re.search(r'<form method="post" action="/accounts/logout/">', page)

    response = logged_in_client.post("/accounts/logout/")

    assert response.status_code == 302
    assert logged_in_client.get(FEED).status_code == 302


def test_layout_loads_vendored_htmx_and_sets_csrf_header(logged_in_client):
    page = logged_in_client.get(FEED).content.decode()

    assert "/static/django_htmx/htmx-2" in page
    assert 'hx-headers=\'{"x-csrftoken": "' in page
    assert "/static/css/eventsite.css" in page
    assert "http://" not in re.sub(r"http://testserver", "", page.split("<main")[0])
    for href in ("/events/", "/automations/", "/webhooks/", "/audit/"):
        assert f'href="{href}"' in page


def test_static_assets_are_served(logged_in_client):
    for path in ("/static/css/eventsite.css", "/static/js/feed.js"):
        response = logged_in_client.get(path)
        assert response.status_code == 200, path


def test_empty_feed_explains_how_to_send_a_first_event(logged_in_client):
    response = logged_in_client.get(FEED)

    assert response.status_code == 200
    page = response.content.decode()
    assert "No events yet" in page
    assert "curl -X POST http://testserver/api/events" in page
    assert "create_api_token alice" in page


def test_feed_shows_rows_newest_first_with_readable_labels(logged_in_client):
    old, new = store(
        event_data("prefect.flow-run.Completed", "prefect.flow-run.1", ago=timedelta(minutes=5)),
        event_data(
            "acme.order_created",
            "acme.order.7",
            labels={"prefect.resource.name": "Order 7"},
            related=[related("acme.customer.3", "customer"), related("tag-eu", "tag")],
            payload={"amount": 12},
        ),
    )

    response = logged_in_client.get(FEED)

    assert response.status_code == 200
    assert row_ids(response) == [str(new.id), str(old.id)]
    page = response.content.decode()
    assert "Flow Run Completed" in page
    assert "Acme Order Created" in page
    assert '<code class="ev-name" title="acme.order_created">acme.order_created</code>' in page
    assert "Order 7" in page
    assert '<span class="role">customer</span>' in page
    assert "{&quot;amount&quot;:12}" in page
    assert f'href="/events/{new.id}/"' in page
    assert "<b>2</b> events" in page


def test_feed_hides_log_writes_unless_picked(logged_in_client):
    log, other = store(event_data("prefect.log.write"), event_data("acme.order.created"))

    assert row_ids(logged_in_client.get(FEED)) == [str(other.id)]
    picked = logged_in_client.get(FEED, {"event": "prefect.log.write"})
    assert row_ids(picked) == [str(log.id)]
    by_prefix = logged_in_client.get(FEED, {"event": "prefect.*"})
    assert row_ids(by_prefix) == [str(log.id)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"event": "acme.order.*"}, {"order1", "order2"}),
        ({"event": "acme.order.created"}, {"order1"}),
        ({"event": ["acme.order.created", "acme.payment.*"]}, {"order1", "payment"}),
        ({"exclude": "acme.order.*"}, {"payment", "flow"}),
        ({"exclude": "acme.order.created"}, {"order2", "payment", "flow"}),
        ({"resource": "acme.order.1"}, {"order1"}),
        ({"resource": "acme.order.*"}, {"order1", "order2"}),
        ({"resource": ["acme.payment.9", "acme.order.*"]}, {"order1", "order2", "payment"}),
        ({"label": "env=prod"}, {"order1", "payment"}),
        ({"label": "env=!prod"}, {"order2"}),
        ({"label": "env=pr*"}, {"order1", "payment"}),
        ({"label": ["env=prod", "team=billing"]}, {"payment"}),
        ({"related": "acme.customer.3"}, {"order1", "payment"}),
        ({"role": "flow"}, {"flow"}),
        ({"related": "acme.customer.3", "role": "customer"}, {"order1"}),
        ({"q": "refund"}, {"payment"}),
        ({"q": "-refund"}, {"order1", "order2", "flow"}),
        ({"range": "15m"}, {"order1", "order2", "payment"}),
        ({"range": "30d"}, {"order1", "order2", "payment", "flow", "old"}),
    ],
)
def test_feed_narrows_by_each_filter_parameter(logged_in_client, params, expected):
    names = {}
    for key, data in {
        "order1": event_data(
            "acme.order.created",
            "acme.order.1",
            labels={"env": "prod"},
            related=[related("acme.customer.3", "customer")],
        ),
        "order2": event_data("acme.order.shipped", "acme.order.2", labels={"env": "dev"}),
        "payment": event_data(
            "acme.payment.captured",
            "acme.payment.9",
            labels={"env": "prod", "team": "billing"},
            related=[related("acme.customer.3", "payer")],
            payload={"note": "partial refund"},
        ),
        "flow": event_data(
            "prefect.flow-run.Completed",
            "prefect.flow-run.5",
            related=[related("prefect.flow.1", "flow")],
            ago=timedelta(hours=2),
        ),
        "old": event_data("acme.order.created", "acme.order.3", ago=timedelta(days=3)),
    }.items():
        names[store(data)[0].id.hex] = key

    response = logged_in_client.get(FEED, params)

    assert response.status_code == 200
    assert {names[uuid.UUID(i).hex] for i in row_ids(response)} == expected


def test_feed_custom_since_until_window(logged_in_client):
    now = datetime.now(UTC)
    inside, _ = store(
        event_data(occurred=now - timedelta(hours=30)),
        event_data(occurred=now - timedelta(hours=10)),
    )
    params = {
        "since": (now - timedelta(hours=31)).isoformat(),
        "until": (now - timedelta(hours=29)).isoformat(),
    }

    response = logged_in_client.get(FEED, params)

    assert response.status_code == 200
    assert row_ids(response) == [str(inside.id)]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "yesterday-ish"}, "since", "Enter a valid date/time"),
        ({"until": "2026-13-45T99:00"}, "until", "Enter a valid date/time"),
        ({"since": "2026-01-02T00:00Z", "until": "2026-01-01T00:00Z"}, "until", "must be after"),
        ({"since": "0999-01-01T00:00Z"}, "since", "between 1970 and 2200"),
        ({"q": "x" * 201}, "q", "at most 200 characters"),
        ({"label": "no-equals-sign"}, "label", "is not a label filter"),
        ({"label": "env="}, "label", "is not a label filter"),
        ({"role": "<script>"}, "role", "is not a role"),
        ({"event": "acme.*.created"}, "event", "only a trailing"),
        ({"range": "3y"}, "range", "Select a valid choice"),
        ({"resource": "x" * 2000}, "resource", "at most 1024"),
    ],
)
def test_bad_parameters_show_form_errors_not_a_500(logged_in_client, params, field, message):
    store(event_data())

    response = logged_in_client.get(FEED, params)

    assert response.status_code == 200
    page = response.content.decode()
    assert '<div class="errors" role="alert">' in page
    assert f"<b>{field}</b>" in page
    assert message in page
    assert len(row_ids(response)) == 1  # the valid parameters still apply


def test_htmx_load_more_returns_the_rows_partial_with_a_real_href(logged_in_client):
    now = datetime.now(UTC)
    store(
        *[event_data(resource_id=f"r.{i}", occurred=now - timedelta(seconds=i)) for i in range(60)]
    )
    first = logged_in_client.get(FEED)
    page = first.content.decode()
    more = re.search(r'<a id="load-more" class="load-more" href="([^"]+)" hx-get="([^"]+)"', page)
    assert more and more.group(1) == more.group(2)
    url = more.group(1).replace("&amp;", "&")

    partial = logged_in_client.get(url, headers={"HX-Request": "true", "HX-Target": "load-more"})

    assert partial.status_code == 200
    body = partial.content.decode()
    assert "<html" not in body and 'id="filters"' not in body
    assert len(row_ids(first)) == 50
    assert len(row_ids(partial)) == 10
    assert not set(row_ids(first)) & set(row_ids(partial))
    assert 'id="load-more"' not in body
    # Without htmx the same link is a whole page.
    full = logged_in_client.get(url)
    assert "<html" in full.content.decode() and row_ids(full) == row_ids(partial)


def test_htmx_filter_request_returns_the_main_partial(logged_in_client):
    store(event_data("acme.a"), event_data("acme.b"))

    response = logged_in_client.get(
        FEED, {"event": "acme.a"}, headers={"HX-Request": "true", "HX-Target": "feed-main"}
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="feed-main"')
    assert "<html" not in body
    assert len(row_ids(response)) == 1


def test_tampered_load_more_token_shows_a_message(logged_in_client):
    store(event_data())

    response = logged_in_client.get(FEED, {"after": "garbage"})

    assert response.status_code == 200
    assert "has expired or was altered" in response.content.decode()
    assert len(row_ids(response)) == 1


def test_histogram_bars_with_events_link_to_their_narrower_range_and_empty_ones_are_inert(
    logged_in_client,
):
    now = datetime.now(UTC)
    store(event_data(occurred=now - timedelta(minutes=3)))

    response = logged_in_client.get(FEED, {"range": "15m", "event": "acme.*"})

    page = response.content.decode()
    width = int(re.search(r'<svg class="histogram" viewBox="0 0 (\d+) 40"', page)[1])
    assert 15 <= width <= 16  # a bucket per minute of the window...
    bars = re.findall(r'<a href="(/events/\?[^"]+)" tabindex="(-?\d)"', page)
    assert len(bars) == 1  # ...but only the one with events is a link (and a tab stop)
    [(href, tabindex)] = bars
    assert "since=" in href and "until=" in href and "range=" not in href
    assert "event=acme.%2A" in href
    assert tabindex == "0"
    assert len(re.findall(r'<rect class="seg s-other"', page)) == 1


def test_histogram_unit_follows_the_span_of_the_events(logged_in_client):
    now = datetime.now(UTC)
    store(
        event_data(),
        event_data(occurred=now - timedelta(minutes=50)),
        event_data(occurred=now - timedelta(hours=23)),
        event_data(occurred=now - timedelta(days=6)),
        event_data(occurred=now - timedelta(days=399)),
        event_data(occurred=now - timedelta(days=3640)),
    )
    unit = re.compile(r"per (\w+)")

    assert unit.search(logged_in_client.get(FEED, {"range": "1h"}).content.decode())[1] == "minute"
    assert unit.search(logged_in_client.get(FEED, {"range": "24h"}).content.decode())[1] == "hour"
    assert unit.search(logged_in_client.get(FEED, {"range": "7d"}).content.decode())[1] == "hour"
    since = {"since": (now - timedelta(days=400)).isoformat()}
    assert unit.search(logged_in_client.get(FEED, since).content.decode())[1] == "day"
    # Past 1000 days the buckets widen instead of failing.
    decade = {"since": (now - timedelta(days=3650)).isoformat()}
    assert "per 4 days" in logged_in_client.get(FEED, decade).content.decode()


def test_histogram_starts_where_the_events_start_and_stacks_failures_below(logged_in_client):
    now = datetime.now(UTC)
    store(
        event_data("prefect.flow-run.Completed", occurred=now - timedelta(minutes=90)),
        event_data("prefect.flow-run.Failed", occurred=now - timedelta(minutes=30)),
        event_data("prefect.flow-run.Completed", occurred=now - timedelta(minutes=30)),
    )

    page = logged_in_client.get(FEED, {"range": "7d"}).content.decode()

    # Seven days asked, two hours of data: the bars cover the data, by minute, not 168 hours.
    assert "per minute" in page
    width = int(re.search(r'<svg class="histogram" viewBox="0 0 (\d+) 40"', page)[1])
    assert 90 <= width <= 92
    assert re.search(r"<b>3</b> events", page)
    bar = re.search(r'data-counts="1,0,0,1,0">.*?</a>', page)[0]
    failed_y = float(re.search(r's-failed" x="\d+" y="([\d.]+)"', bar)[1])
    completed_y = float(re.search(r's-completed" x="\d+" y="([\d.]+)"', bar)[1])
    assert failed_y > completed_y  # the failed segment sits at the bottom


def test_a_fresh_install_shows_no_count_and_no_histogram_for_its_own_audit_events(
    logged_in_client, user
):
    # Signing in and creating a token are audited; the feed leaves the audit trail out, and its
    # count and histogram must agree with its (empty) rows.
    ApiToken.issue(user, name="first-run")
    logged_in_client.post(reverse("logout"))
    logged_in_client.post(
        reverse("login"), {"username": "alice", "password": "correct horse battery"}
    )

    page = logged_in_client.get(FEED).content.decode()

    assert "No events yet" in page
    assert re.search(r"<b>0</b> events", page)
    assert '<svg class="histogram"' not in page


def test_name_picker_offers_every_dotted_prefix_with_counts(logged_in_client):
    store(
        event_data("prefect.flow-run.Completed"),
        event_data("prefect.flow-run.Running"),
        event_data("acme.order.created"),
    )

    page = logged_in_client.get(FEED).content.decode()

    values = re.findall(r'<input type="checkbox" name="event" value="([^"]+)"', page)
    assert values == [
        "acme.*",
        "acme.order.*",
        "acme.order.created",
        "prefect.*",
        "prefect.flow-run.*",
        "prefect.flow-run.Completed",
        "prefect.flow-run.Running",
    ]
    assert re.search(r'value="prefect.flow-run.\*">.*?<span class="count">2</span>', page)


def test_active_filters_show_as_removable_chips(logged_in_client):
    response = logged_in_client.get(FEED, {"resource": ["a.1", "b.*"], "q": "x"})

    page = response.content.decode()
    assert '<a href="/events/?resource=b.%2A&amp;q=x"' in page
    assert '<input type="hidden" name="resource" value="a.1">' in page


@pytest.mark.parametrize(
    "payload",
    [
        {"html": "<script>alert(1)</script>"},
        {"img": "<img src=x onerror=alert(1)>"},
        {"link": "javascript:alert(1)"},
    ],
)
def test_untrusted_payloads_and_labels_render_inert_in_the_feed(logged_in_client, payload):
    evil = next(iter(payload.values()))
    store(
        event_data(
            "acme.<script>alert(1)</script>",
            "acme.x.<img src=x onerror=alert(1)>",
            labels={"prefect.resource.name": evil, "url": "javascript:alert(1)"},
            related=[
                related("javascript:alert(1)", "<b>role</b>", **{"prefect.resource.name": evil})
            ],
            payload=payload,
        )
    )

    response = logged_in_client.get(FEED)

    page = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<b>role</b>" not in page
    assert 'href="javascript:' not in page
    assert "&lt;script&gt;" in page


def test_very_long_values_are_cut_short_in_rows(logged_in_client):
    store(
        event_data(
            "acme." + "n" * 1000,
            "acme." + "r" * 5000,
            payload={"blob": "p" * 10000},
        )
    )

    page = logged_in_client.get(FEED).content.decode()

    row = page[page.index('<article class="ev') : page.index("</article>")]
    # What the row shows is cut short; only the links carry a whole id (they must).
    assert len(re.sub(r'href="[^"]*"', "", row)) < 4000


def test_feed_renders_with_a_one_megabyte_event(logged_in_client):
    store(event_data(payload={"blob": "x" * 1_000_000}))

    response = logged_in_client.get(FEED)

    assert response.status_code == 200
    assert len(row_ids(response)) == 1
    assert len(response.content) < 200_000


def test_filterset_builds_the_one_event_filter():
    filterset = FeedFilterSet(
        {
            "range": "1h",
            "event": ["acme.*"],
            "exclude": ["acme.debug.*", "acme.noise"],
            "resource": ["acme.order.1"],
            "label": ["env=prod", "env=stage"],
            "related": ["acme.customer.3"],
            "role": ["customer"],
            "q": "refund",
        }
    )

    assert filterset.is_valid(), filterset.errors
    f = filterset.event_filter()
    assert f.event.prefix == ["acme."]
    assert f.event.exclude_prefix == ["acme.debug."]
    assert f.event.exclude_name == ["acme.noise", *HIDDEN_BY_DEFAULT]
    assert f.resource.id == ["acme.order.1"]
    assert f.resource.labels == {"env": ["prod", "stage"]}
    assert f.related.id == ["acme.customer.3"] and f.related.role == ["customer"]
    assert f.text.query == "refund"
    assert f.occurred.until - f.occurred.since == timedelta(hours=1)
    assert filterset.event_filter(live=True).occurred.until.year == 2200
    assert queries.matching(f).count() == 0


def test_cached_histogram_matches_a_fresh_count_and_sees_new_events():
    now = datetime.now(UTC)
    store(*[event_data(occurred=now - timedelta(hours=h, minutes=5)) for h in range(0, 30, 3)])
    f = EventFilter.model_validate({"occurred": {"since": now - timedelta(hours=24), "until": now}})

    cold = volume.count_by_time(f, unit="hour", interval=1)
    warm = volume.count_by_time(f, unit="hour", interval=1)
    fresh = [b["count"] for b in queries.count_by_time(f, unit="hour", interval=1)]

    assert [b["count"] for b in cold] == [b["count"] for b in warm] == fresh
    assert sum(fresh) == 8
    store(event_data(occurred=now - timedelta(seconds=2)))
    later = EventFilter.model_validate(
        {"occurred": {"since": now - timedelta(hours=24), "until": datetime.now(UTC)}}
    )
    assert sum(b["count"] for b in volume.count_by_time(later, unit="hour", interval=1)) == 9


def test_the_histograms_cut_buckets_are_counted_from_cached_minutes(monkeypatch):
    """The first hour a 24-hour window cuts, and the hour not yet settled, are the sums of their
    cached minutes: once warm, only the minutes at the window's edges are counted again, and
    the buckets are still a fresh count's (events on both sides of the cut included)."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=24)
    store(
        *[event_data(occurred=since + timedelta(minutes=m, seconds=-20)) for m in range(0, 50, 7)],
        *[event_data(occurred=now - timedelta(minutes=m, seconds=5)) for m in range(0, 50, 6)],
        *[event_data(occurred=now - timedelta(hours=h)) for h in range(2, 20, 5)],
    )
    f = EventFilter.model_validate({"occurred": {"since": since, "until": now}})
    counted: list[tuple[str, timedelta]] = []
    real = queries.count_by_time

    def spy(event_filter, *, unit, interval, **kwargs):
        occurred = event_filter.occurred
        counted.append((unit, occurred.until - occurred.since))
        return real(event_filter, unit=unit, interval=interval, **kwargs)

    monkeypatch.setattr(queries, "count_by_time", spy)
    cold = volume.count_by_time(f, unit="hour", interval=1)
    counted.clear()
    warm = volume.count_by_time(f, unit="hour", interval=1)

    fresh = [b["count"] for b in real(f, unit="hour", interval=1)]
    assert [b["count"] for b in cold] == [b["count"] for b in warm] == fresh
    assert sum(fresh) == 7 + 9 + 4
    # The cut minute at `since`, and the last minute or two (not settled): nothing wider.
    assert counted and all(unit == "minute" for unit, _ in counted), counted
    assert all(width <= timedelta(minutes=2) for _, width in counted), counted


def test_total_comes_from_the_histogram_and_matches_the_rows(logged_in_client):
    store(*[event_data(ago=timedelta(hours=h)) for h in range(5)])

    first = logged_in_client.get(FEED).content.decode()
    second = logged_in_client.get(FEED).content.decode()

    assert "<b>5</b> events" in first and "<b>5</b> events" in second
