"""Totals that never scan for long: exact when cheap, else a flagged estimate (issue 14).

The budgets are the real mechanism (a SQLite progress handler, PostgreSQL's statement_timeout);
tests shrink them to force the estimate on a small log.
"""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections

from events import queries, timebox, totals
from events.filters import EventFilter
from events.ingest import ingest
from eventsite.query_deadline import QueryDeadline, sqlite_deadline
from tests.factories import event_data

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
SLOW_SQL = {
    # Counting to a billion in a recursive CTE: seconds of work that a budget must cut short.
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000)"
    " SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(5)",
}


def store(events):
    assert ingest(events, source="test").ok


def label_filter(region: str) -> EventFilter:
    return EventFilter.model_validate(
        {
            "occurred": {"since": (NOW - timedelta(hours=3)).isoformat(), "until": NOW.isoformat()},
            "resource": {"labels": {"acme.region": [region]}},
        }
    )


@pytest.fixture
def spread():
    """180 events over three hours; every third is in eu-west."""
    store(
        [
            event_data(
                resource_id=f"acme.order.{i}",
                labels={"acme.region": "eu-west" if i % 3 == 0 else "us-east"},
                occurred=NOW - timedelta(minutes=i),
            )
            for i in range(180)
        ]
    )


def test_a_statement_past_its_budget_is_cancelled_and_the_connection_stays_usable():
    started = datetime.now(UTC)
    with pytest.raises(timebox.OutOfTime), timebox.within(0.05), connection.cursor() as cursor:
        cursor.execute(SLOW_SQL[connection.vendor])
        cursor.fetchall()
    assert datetime.now(UTC) - started < timedelta(seconds=2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_setting('statement_timeout')")
            assert cursor.fetchone()[0] != "50ms"


@pytest.mark.parametrize("shorter", ["budget", "request"])
def test_a_budget_and_the_requests_deadline_each_stop_a_statement(shorter):
    """The request's deadline (eventsite.query_deadline) and a read's budget share SQLite's one
    progress handler: whichever is nearer stops the statement, and only the budget's is
    OutOfTime (the request's is its own error, a 503)."""
    budget, request = (0.05, 5.0) if shorter == "budget" else (5.0, 0.05)
    expected = timebox.OutOfTime if shorter == "budget" else OperationalError
    deadline = connection.execute_wrapper(QueryDeadline(request))
    with deadline, pytest.raises(expected), timebox.within(budget), connection.cursor() as cursor:
        cursor.execute(SLOW_SQL[connection.vendor])
        cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(SLOW_SQL[connection.vendor].replace("1000000000", "10").replace("5", "0"))
        assert cursor.fetchall()


def test_a_statement_stopped_past_the_requests_deadline_is_the_requests_even_past_the_budget():
    """On a loaded machine SQLite's handler may first look at the clock after both a read's
    budget and the request's deadline (set per statement, inside the budget) passed, and
    PostgreSQL's cancel may come as late as the budget's end: the request's, nearer or as near,
    stopped it, so the error is its own (a 503), not OutOfTime, whose fallback read would
    answer 200 past the deadline."""
    budget = 0.2
    if connection.vendor == "sqlite":  # the request's deadline, pushed per statement
        db, outer = connections[DEFAULT_DB_ALIAS], nullcontext()
        inner = sqlite_deadline(db, time.monotonic() - 1)  # passed, nearer than the budget's
        budget = 0.000_001  # passed too by the handler's first look at the clock
    else:  # the request's timeout, in force around the budget, as long as the budget's
        outer, inner = connection.execute_wrapper(QueryDeadline(budget)), nullcontext()
    with outer, pytest.raises(OperationalError), timebox.within(budget), inner:  # noqa: SIM117
        with connection.cursor() as cursor:
            cursor.execute(SLOW_SQL[connection.vendor])
            cursor.fetchall()


def test_a_statement_within_its_budget_answers_and_the_setting_is_put_back():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            (before,) = cursor.fetchone()
    with timebox.within(5), connection.cursor() as cursor:
        cursor.execute("SELECT 41 + 1")
        assert cursor.fetchone() == (42,)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('statement_timeout')")
            assert cursor.fetchone() == (before,)


def test_a_cheap_total_is_exact(spread):
    page = queries.first_page(label_filter("eu-west"), limit=10)

    assert (page.total, page.total_is_estimate) == (60, False)
    assert page.next_token


def test_a_short_page_is_its_own_exact_total_even_without_time_to_count(spread, monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)

    page = queries.first_page(label_filter("eu-west"), limit=100)

    assert (page.total, page.total_is_estimate) == (60, False)


def test_past_the_budget_the_total_is_the_pages_density_scaled_to_the_window(spread, monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)

    page = queries.first_page(label_filter("eu-west"), limit=10)

    # The ten newest matches span events 0..27 (28 of the window's 180): 10 × 180 / 28.
    assert page.total_is_estimate
    assert page.total == 64


def test_without_a_page_the_total_is_estimated_from_time_slices(spread, monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    monkeypatch.setattr(totals, "ESTIMATE_BUDGET", 5)  # time for every slice: exact again

    assert totals.total_of(label_filter("eu-west")) == (60, True)


def test_without_any_time_the_estimate_is_at_least_what_is_known(spread, monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    monkeypatch.setattr(totals, "ESTIMATE_BUDGET", 0)

    page = queries.first_page(label_filter("eu-west"), limit=10)

    assert page.total_is_estimate
    assert page.total >= 11  # ten shown and at least one more
    # Paging on from an estimate still reaches every match.
    seen = [e.id for e in page.events]
    while page.next_token:
        page = queries.next_page(page.next_token)
        assert page.total_is_estimate
        seen += [e.id for e in page.events]
    assert len(seen) == len(set(seen)) == 60


def test_a_partial_count_is_scaled_by_the_share_of_the_window_it_covered(spread, monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    counted = []
    real = timebox.within

    def two_slices(seconds):  # no time for the whole count, then time for two slices only
        counted.append(seconds)
        if len(counted) in (2, 3):
            return real(5)
        raise timebox.OutOfTime

    monkeypatch.setattr(totals.timebox, "within", two_slices)
    total, estimate = totals.total_of(label_filter("eu-west"))

    # Minutes 0..5 (inclusive) hold events 0..5, of which 0 and 3 are eu-west: 2 of 6 → a third
    # of the 180 events in the window.
    assert (total, estimate) == (60, True)


def test_the_api_flags_an_estimated_total(api_client, spread, monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    body = {"filter": label_filter("eu-west").to_json(), "limit": 5}

    data = api_client.post("/api/events/filter", body, format="json").json()

    assert data["total_is_estimate"] is True
    assert data["total"] >= 6
    assert isinstance(data["total"], int)
    exact = api_client.post("/api/events/filter", {**body, "limit": 200}, format="json").json()
    assert (exact["total"], exact["total_is_estimate"]) == (60, False)


@pytest.mark.parametrize(
    ("value", "said"),
    [(950, "about 950"), (1234, "about 1.2k"), (400_017, "about 400k"), (1_250_000, "about 1.2M")],
)
def test_estimates_read_as_people_say_them(value, said):
    from events.templatetags.events_extras import about

    assert about(value) == said


def distinct_filter(end: datetime = NOW) -> EventFilter:
    return EventFilter.model_validate(
        {
            "occurred": {"since": (end - timedelta(hours=3)).isoformat(), "until": end.isoformat()},
            "resource": {"distinct": True},
        }
    )


def resources_repeated(counts: list[int], end: datetime = NOW) -> None:
    """Resource i has counts[i] events, shuffled (with a fixed seed) over the three hours before
    `end`."""
    ids = [f"acme.order.{i}" for i, n in enumerate(counts) for _ in range(n)]
    random.Random(7).shuffle(ids)
    step = timedelta(hours=3) / (len(ids) + 1)
    store([event_data(resource_id=rid, occurred=end - step * (k + 1)) for k, rid in enumerate(ids)])


def test_a_distinct_total_counts_resources_exactly_when_cheap(monkeypatch):
    # "Cheap" is "within COUNT_BUDGET"; a budget this test controls, so a loaded machine taking
    # more than 20 ms for 600 events does not turn the exact answer into an estimate.
    monkeypatch.setattr(totals, "COUNT_BUDGET", 5)
    resources_repeated([30] * 20)

    page = queries.first_page(distinct_filter(), limit=5)

    assert (page.total, page.total_is_estimate) == (20, False)


def test_past_the_budget_a_distinct_total_estimates_resources_not_events(monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    monkeypatch.setattr(totals, "DISTINCT_BUDGET", 5)  # time for every slice
    resources_repeated([30] * 20)

    page = queries.first_page(distinct_filter(), limit=5)

    # 600 events of 20 resources: each sampled event counts 1/30 of a resource.
    assert (page.total, page.total_is_estimate) == (20, True)


def test_a_distinct_estimate_weighs_each_resource_by_its_matches(monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    monkeypatch.setattr(totals, "DISTINCT_BUDGET", 5)
    # The sample's strata are whole hours, so where NOW falls in its hour moves the events between
    # them and the estimate with it (29 to 49 over an hour). A window that ends on the hour gives
    # one sample, the same on every run and backend.
    end = NOW.replace(minute=0, second=0)
    resources_repeated([1] * 30 + [10] * 10, end=end)  # 40 resources, 130 events

    total, estimate = totals.total_of(distinct_filter(end), events=[None] * 5, limit=5)

    assert estimate
    assert 30 <= total <= 50, total  # a sample's estimate; the events would say 130


def test_without_time_to_sample_a_distinct_total_is_at_least_the_page(monkeypatch):
    monkeypatch.setattr(totals, "COUNT_BUDGET", 0)
    monkeypatch.setattr(totals, "DISTINCT_BUDGET", 0)
    resources_repeated([3] * 20)

    page = queries.first_page(distinct_filter(), limit=5)

    assert page.total_is_estimate
    assert 6 <= page.total <= 60
