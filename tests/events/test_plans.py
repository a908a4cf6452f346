"""Query plans are tested (issue 14): each selective criterion is read from an index of its own,
never by a full scan of the events table, on both backends.

SQLite keeps no statistics, so its plans here are the plans it makes at any size. PostgreSQL
plans by statistics: the log is filled with a few thousand varied events and ANALYZEd, and
sequential scans are priced out (`enable_seqscan = off`), so a plan that still reads the table
from end to end shows that no index can serve the criterion.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext

from events import page_plans, page_queries, queries, rollups, text_search
from events.filters import EventFilter
from events.ingest import ingest
from events.models import Event
from events.text_search import fts_match
from tests.factories import event_data, related

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)
HOUR = {"since": (NOW - timedelta(hours=1)).isoformat(), "until": NOW.isoformat()}

# criterion → (filter, the index the matches are read from: SQLite name, PostgreSQL name)
SELECTIVE = {
    # (On PostgreSQL the B-tree or, in a small log, the BRIN index of migration 0017.)
    "time": ({"occurred": HOUR}, "event_occurred_(id|brin)"),
    "name": ({"event": {"name": ["acme.payment.failed"]}}, "event_name_occurred"),
    "name prefix": ({"event": {"prefix": ["acme.payment.failed1"]}}, "event_name_occurred"),
    "resource id": ({"resource": {"id": ["acme.order.42"]}}, "event_resource_occurred"),
    "resource id prefix": (
        {"resource": {"id_prefix": ["acme.order.42"]}},
        "event_resource_occurred",
    ),
    "related id": ({"related": {"id": ["acme.customer.7"]}}, "eventresource_id_occurred"),
    "related role": ({"related": {"role": ["owner"]}}, "eventresource_role_occurred"),
    "related resources_in_roles": (
        {"related": {"resources_in_roles": [["acme.customer.7", "customer"]]}},
        "eventresource_id_occurred",
    ),
    "any_resource id": ({"any_resource": {"id": ["acme.customer.7"]}}, "eventresource_id_occurred"),
    "any_resource id prefix": (
        {"any_resource": {"id_prefix": ["acme.customer.77"]}},
        "eventresource_id_occurred",
    ),
    "event id": ({"id": {"id": ["0190c8f4-0000-7000-8000-000000000000"]}}, "pkey|autoindex"),
}
# Criteria a newest-first walk answers (common matches): the walk must use the occurred index
# and look the resource rows up by event id.
WALKED = {
    "label": {"resource": {"labels": {"acme.region": ["eu-west"]}}},
    "label negation": {"resource": {"labels": {"acme.region": ["!eu-west"]}}},
    "labels, two keys": {
        "resource": {"labels": {"acme.region": ["us-east"], "acme.shard": ["1*"]}}
    },
    "related role": {"related": {"role": ["customer"]}},
    "related labels": {"related": {"labels": {"prefect.resource.name": ["Customer 7*"]}}},
    "any_resource id prefix": {"any_resource": {"id_prefix": ["acme."]}},
    "exclude name": {"event": {"exclude_name": ["acme.order.created"]}},
    "text": {"text": {"query": "gold"}},
}

FULL_SCAN = {
    # SQLite: "SCAN events_event" (a SEARCH is bounded by an index; "SCAN t USING INDEX" walks
    # all of one). PostgreSQL: a sequential scan.
    "sqlite": re.compile(r"\bSCAN (events_event|events_eventresource|U\d)\b"),
    "postgresql": re.compile(r"Seq Scan on (events_event|events_eventresource)\b"),
}


@pytest.fixture(autouse=True)
def log():
    """Three thousand events over a day: 50 names, 1,000 orders, 100 customers, a few roles."""
    text_search._probed.clear()  # (what other tests' events said of a term's trigrams)
    text_search._parts.clear()
    events = []
    for i in range(3000):
        verb = ("created", "paid", "failed", "shipped", "refunded")[i % 5]
        kind = ("order", "payment", "invoice", "refund", "ticket")[i % 5 * 7 % 5]
        events.append(
            event_data(
                f"acme.{kind}.{verb}{i % 10}",
                f"acme.order.{i % 1000}",
                labels={
                    "acme.region": ("eu-west", "us-east", "ap-south")[i % 3],
                    "acme.shard": str(i % 11),
                    **({"acme.flag": "escalated"} if i % 97 == 0 else {}),
                },
                related=[
                    related(
                        f"acme.customer.{i % 100}",
                        "customer",
                        **{"prefect.resource.name": f"Customer {i % 100}"},
                    ),
                    *([related("acme.team.a", "owner")] if i % 97 == 0 else []),
                ],
                payload={
                    "message": ("gold", "late", "ok")[i % 3],
                    **({"note": "escalated"} if i % 97 == 0 else {}),
                },
                occurred=NOW - timedelta(seconds=i * 29),
            )
        )
    for start in range(0, len(events), 500):
        assert ingest(events[start : start + 500], source="test").ok
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            analyze(cursor)
            cursor.execute("SET LOCAL enable_seqscan = off")


def analyze(cursor) -> None:
    """Statistics, and GIN indexes as the planner sees them after autovacuum: it prices a GIN
    index by its pending list too, and the rows this file's tests inserted and rolled back stay
    there until autovacuum cleans it on its own schedule (a long list made the walk look
    cheaper than the trigram index on a busy machine)."""
    cursor.execute("ANALYZE events_event")
    cursor.execute("ANALYZE events_eventresource")
    cursor.execute(
        "SELECT gin_clean_pending_list(c.oid) FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
        "WHERE c.relkind = 'i' AND a.amname = 'gin'"
    )


def plans(filter_json: dict) -> dict[str, str]:
    return page_plans.explain(EventFilter.model_validate(filter_json))


@pytest.mark.parametrize("criterion", SELECTIVE)
def test_a_selective_criterion_is_read_from_its_own_index(criterion):
    filter_json, index = SELECTIVE[criterion]
    found = plans(filter_json)

    for name in ("by_criteria", "count"):
        plan = found[name]
        assert not FULL_SCAN[connection.vendor].search(plan), f"{name} scans:\n{plan}"
        assert re.search(index, plan), f"{name} does not use {index}:\n{plan}"


def test_a_rare_text_term_is_read_from_the_trigram_index():
    """PostgreSQL's pg_trgm GIN index, which its planner prices above a scan of the time index
    until the log is some ten thousand events: 20,000 more. SQLite's FTS5 trigram table
    (`events_event_fts`), whose rows are looked up by rowid."""
    if connection.vendor == "postgresql":
        _filler()
    found = plans({"text": {"query": "escalated"}})

    index = {"postgresql": "event_search_trgm", "sqlite": "events_event_fts VIRTUAL TABLE"}
    for name in ("by_criteria", "count"):
        plan = found[name]
        assert not FULL_SCAN[connection.vendor].search(plan), f"{name} scans:\n{plan}"
        assert index[connection.vendor] in plan, plan
        if connection.vendor == "sqlite":
            assert "SEARCH events_event USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan


def test_a_common_text_term_is_not_read_from_the_fts5_table():
    """A term whose trigrams are each in many events (at least FEW_ROWS) is walked on SQLite:
    FTS5 would read every row of each (`text_search.fts_match`)."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 table")
    event_filter = EventFilter.model_validate({"text": {"query": "gold"}})
    text_search._probed.clear()
    assert fts_match("gold") is not None  # 1,000 of 3,000 events: rare at this size

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text_search, "FEW_ROWS", 500)
        text_search._probed.clear()
        assert fts_match("gold") is None
        assert "events_event_fts" not in page_plans.explain(event_filter)["by_criteria"]
    text_search._probed.clear()


# One customer's events (30 of 3,000, a 1 % term): every trigram of the term is in more events
# than its matches, `.42` and `42"` in fewer than the others (orders 42, 420-429, 142, …).
CUSTOMER_TERM = "'\"acme.customer.42\"'"


def test_a_term_whose_trigrams_are_each_common_is_read_by_the_and_of_the_two_rarest():
    """SQLite: no trigram of the term is in fewer than FEW_ROWS events, but the two least
    common are in fewer together: FTS5 reads their AND (`text_search._narrowing_trigrams`)."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's FTS5 table")
    # Events with one of the two trigrams and not the other.
    others = [
        event_data("acme.other", payload={"v": v}) for v in ("a42", "b.42x") for _ in range(20)
    ]
    assert ingest(others, source="test").ok
    rows = {g: text_search._rows([g]) for g in (".42", '42"', "r.4", "acm")}
    both = text_search._rows([".42", '42"'])
    assert both < min(rows.values()) and rows["r.4"] > max(rows[".42"], rows['42"'])
    event_filter = EventFilter.model_validate({"text": {"query": CUSTOMER_TERM}})
    walk_page = list(event_filter.ordered(Event.objects.all())[:10])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text_search, "FEW_ROWS", both + 1)
        patch.setattr(text_search, "MANY_ROWS", max(rows[".42"], rows['42"']) + 1)
        patch.setattr(page_plans, "WALK_BUDGET", 0)
        text_search._probed.clear()
        assert fts_match(CUSTOMER_TERM) == '(("42""" AND ".42"))'
        plan = page_plans.explain(event_filter)["by_criteria"]
        found = page_plans.newest(event_filter, Q(), 10)
        # Each under MANY_ROWS, but together not under FEW_ROWS: walked.
        patch.setattr(text_search, "FEW_ROWS", both)
        text_search._probed.clear()
        assert fts_match(CUSTOMER_TERM) is None
        # A trigram of the two at MANY_ROWS or more: walked, their AND not even counted.
        patch.setattr(text_search, "FEW_ROWS", both + 1)
        patch.setattr(text_search, "MANY_ROWS", min(rows[".42"], rows['42"']))
        text_search._probed.clear()
        assert fts_match(CUSTOMER_TERM) is None
    text_search._probed.clear()

    assert "events_event_fts VIRTUAL TABLE" in plan and not FULL_SCAN["sqlite"].search(plan), plan
    assert found.rare and found.count == len(
        Event.objects.filter(search__contains='"acme.customer.42"')
    )
    assert found.events == walk_page


def test_postgresql_asks_the_trigram_index_for_a_terms_numbered_part():
    """pg_trgm intersects the events of every word of a term; those of `acme` and `customer`
    are nearly all events, so the index is asked for `.42"` (the word 42) and strpos checks the
    term on what it finds (`text_search.trigram_part`)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's pg_trgm index")
    _filler()
    found = plans({"text": {"query": CUSTOMER_TERM}})

    for name in ("by_criteria", "count"):
        plan = found[name]
        assert not FULL_SCAN["postgresql"].search(plan), f"{name} scans:\n{plan}"
        assert "event_search_trgm" in plan, plan
        assert "'%.42\"%'" in plan and "strpos(search, '\"acme.customer.42\"'" in plan, plan


def test_postgresql_asks_for_the_whole_term_when_its_numbered_part_is_common():
    """A number in many events (shard 10: 9 % of them) would have its every event read and
    tested: past PART_SHARE of the newest events, the index is asked for the whole term."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's pg_trgm index")
    text_search._parts.clear()
    assert text_search.trigram_part('"acme.customer.42"') == '.42"'
    assert text_search.trigram_part('"acme.shard":"10"') == '"acme.shard":"10"'

    plan = plans({"text": {"query": shlex.quote('"acme.shard":"10"')}})["by_criteria"]
    assert '\'%"acme.shard":"10"%\'' in plan and "strpos" not in plan, plan


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("query", [CUSTOMER_TERM, "escalated", "gold -late"])
def test_a_text_page_read_day_by_day_is_the_page(query, descending, monkeypatch):
    """PostgreSQL past the walk reads the matches a few days at a time (`_newest_by_days`); the
    log spans a midnight, and a page's keyset bound falls in any slice."""
    monkeypatch.setattr(page_plans, "WALK_BUDGET", 0)
    window = {"since": (NOW - timedelta(days=3)).isoformat(), "until": NOW.isoformat()}
    event_filter = EventFilter.model_validate(
        {"text": {"query": query}, "occurred": window, "order": "ASC" if not descending else "DESC"}
    )
    expected = list(event_filter.ordered(Event.objects.all()).values_list("id", flat=True))
    assert len(expected) > 20

    assert [e.id for e in page_plans._newest_by_days(event_filter, Q(), 20)] == expected[:20]
    page = queries.first_page(event_filter, limit=9)
    seen = [e.id for e in page.events]
    while page.next_token and len(seen) < 45:
        page = queries.next_page(page.next_token)
        seen += [e.id for e in page.events]
    assert seen == expected[: len(seen)] and len(seen) == min(45, len(expected))


# Exact resource labels on PostgreSQL: `resource @> {...}`, served by the GIN index of migration
# 0011 (alone, and with a glob on another key, which is then tested on the rows it finds).
RARE_LABELS = {
    "label exact": {"resource": {"labels": {"acme.flag": ["escalated"]}}},
    "label exact + glob": {
        "resource": {"labels": {"acme.flag": ["escalated"], "acme.shard": ["1*"]}}
    },
}


def _filler(*, named: bool = False):
    """20,000 more events, because below ~10k PostgreSQL's planner prices a GIN index above a
    scan of the time index. `named`: each named `Filler <n>` (half in eu-west, half in
    us-east) and two days older than the log's events, so the newest hold no such name."""
    older = "interval '2 days' + " if named else ""
    labels = (
        "'prefect.resource.name', 'Filler ' || g, 'acme.region', "
        "(ARRAY['eu-west', 'us-east'])[g % 2 + 1]"
        if named
        else "'acme.region', 'eu-west'"
    )
    search = (
        "'acme.filler \"prefect.resource.name\":\"filler ' || g || '\"'"
        if named
        else "'acme.filler ' || g"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_event (id, occurred, received, event, resource_id, resource, "
            f"related, payload, search) SELECT gen_random_uuid(), now() - ({older}g * "
            "interval '1 s'), now(), 'acme.filler', 'acme.filler.' || g, "
            f"jsonb_build_object('prefect.resource.id', 'acme.filler.' || g, {labels}), "
            f"'[]', '{{}}', {search} FROM generate_series(1, 20000) g"
        )
        analyze(cursor)


@pytest.mark.parametrize("criterion", RARE_LABELS)
def test_a_rare_exact_label_is_read_from_the_label_index(criterion):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no label index: a label filter walks the window (WALKED)")
    _filler()
    found = plans(RARE_LABELS[criterion])

    for name in ("by_criteria", "count"):
        plan = found[name]
        assert not FULL_SCAN[connection.vendor].search(plan), f"{name} scans:\n{plan}"
        assert "event_resource_gin" in plan, plan


# Resource-name globs none of the newest events hold (rare), with a literal prefix, a wildcard
# inside, and beside an exact value of another key: PostgreSQL reads them from the name's own
# index (migration 0016), as the range of the prefix, a few day partitions at a time.
NAME_GLOBS = {
    "prefix": {"prefect.resource.name": ["Filler 4242*"]},
    "wildcard inside": {"prefect.resource.name": ["Filler 12*7"]},
    "exact and glob": {"prefect.resource.name": ["Filler 77", "Filler 1?3"]},
    "with another key": {"prefect.resource.name": ["Filler 19*"], "acme.region": ["eu-west"]},
}


@pytest.mark.parametrize("criterion", NAME_GLOBS)
def test_a_rare_name_glob_is_read_from_the_name_index(criterion):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's resource-name index (SQLite reads its FTS5 table)")
    _filler(named=True)
    labels = NAME_GLOBS[criterion]
    event_filter = EventFilter.model_validate(
        {
            "occurred": {"since": (NOW - timedelta(days=7)).isoformat()},
            "resource": {"labels": labels},
        }
    )
    narrowed = page_plans._rare_labels(event_filter)  # by the name's indexes, not the text's
    assert narrowed is not None and "search" not in str(narrowed), narrowed
    expected = [e.id for e in event_filter.ordered(Event.objects.all()) if e.event == "acme.filler"]

    with CaptureQueriesContext(connection) as statements:
        found = page_plans.newest(event_filter, None, 50)

    assert [e.id for e in found.events] == expected[:50] and expected
    reads = [q["sql"] for q in statements if "prefect.resource.name" in q["sql"]]
    with connection.cursor() as cursor:
        for sql in reads:
            cursor.execute("EXPLAIN " + sql)
            reads[reads.index(sql)] = plan = "\n".join(row[0] for row in cursor.fetchall())
            assert not FULL_SCAN["postgresql"].search(plan), plan
            assert "event_search_trgm" not in plan, plan
    # (A day slice without the filler's rows may read its few by time instead.)
    assert any("event_resource_name" in plan for plan in reads), reads


def test_a_name_glob_is_read_from_the_name_index_only_when_rare():
    """PostgreSQL: the filter's own test of a name glob is one the name's index does not serve
    (`filter_sql.NameText`), so a common glob (a fifth of the events here), walked first, is
    then never read from that index by every match, sorted; only a rare one's read adds the
    condition the index serves (the test above)."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's resource-name index")
    _filler(named=True)
    found = plans({"resource": {"labels": {"prefect.resource.name": ["Filler 1*"]}}})

    for name, plan in found.items():
        # The index may still be read for its `occurred` alone, as any index of a day partition
        # that holds few events (early in the UTC day): never for the name's range.
        served = [
            line for line in plan.splitlines() if "Index Cond" in line and "resource.name" in line
        ]
        assert not served, f"{name}:\n{plan}"
        assert "|| ''" in plan, plan


@pytest.mark.parametrize("criterion", WALKED)
def test_a_walk_follows_time_and_never_scans(criterion):
    plan = plans(WALKED[criterion])["walk"]

    assert not FULL_SCAN[connection.vendor].search(plan), plan
    if connection.vendor == "postgresql":  # whatever the planner guesses of the matches' share
        assert re.search(r"Index Scan( Backward)? using event_occurred_id", plan), plan
        assert not re.search(r"(?m)^\s*(->\s+)?Sort\b(?! Key)", plan), plan  # Merge Append
    if connection.vendor == "sqlite" and criterion.startswith("label"):
        # Resource labels alone: the primary resource rows' own index walked (never the
        # table), then the page's events.
        index = "USING COVERING INDEX eventresource_primary_labels (role="
        assert re.search(r"SEARCH U\d " + re.escape(index), plan), plan
        assert re.search(r"SEARCH events_event USING INDEX sqlite_autoindex", plan), plan
    elif connection.vendor == "sqlite":
        assert "event_occurred_id" in plan or "event_name_occurred" in plan, plan
        if "SUBQUERY" in plan:  # resource rows: one event's, by its id
            assert re.search(r"SEARCH U\d USING INDEX events_eventresource_event_id", plan), plan


def test_the_primary_rows_labels_index_serves_the_labels_walk_alone():
    """SQLite: the other read of the primary resource rows (the suggestions' newest rows) keeps
    the (role, occurred) index; the labels walk's covering index (migration 0014) covers nothing
    there."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's partial index")
    since, until = NOW - timedelta(hours=1), NOW
    with CaptureQueriesContext(connection) as captured:
        assert page_queries.resource_rows(since=since, until=until, related=False)
    walk = plans(WALKED["labels, two keys"])["walk"]

    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "eventresource_role_occurred" in plan, plan
    assert "COVERING INDEX eventresource_primary_labels" in walk, walk


@pytest.mark.parametrize(
    ("related", "index"),
    [(False, "event_resource_occurred"), (True, "eventresource_id_occurred")],
)
def test_a_suggested_id_prefix_is_read_from_an_id_index_with_a_limit(related, index):
    """The suggestions' id prefix reads a (resource_id, occurred) index under the prefix, at most
    `ID_SCAN` entries: the events' for primary resources (on SQLite that index alone), the
    resource rows' for related ones. Not the window by role or time: on SQLite the (role,
    occurred) index read every primary row of the window (7 days at 1M: 0.6-0.7 s)."""
    since, until = NOW - timedelta(days=1), NOW
    prefix = "acme.customer.4" if related else "acme.order.4"
    with CaptureQueriesContext(connection) as captured:
        found = page_queries.resource_ids_starting(
            prefix, since=since, until=until, related=related, limit=5
        )
    (query,) = captured.captured_queries

    assert len(found) == 5 and found == sorted(found), found
    assert all(rid.startswith(prefix) for rid in found), found
    assert f"LIMIT {page_queries.ID_SCAN}" in query["sql"]
    with connection.cursor() as cursor:
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        cursor.execute(prefix + query["sql"])
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    assert index in plan, plan
    assert not FULL_SCAN[connection.vendor].search(plan), plan
    if connection.vendor == "sqlite":
        assert "TEMP B-TREE" not in plan, plan
        if not related:
            assert f"COVERING INDEX {index}" in plan, plan


@pytest.mark.parametrize("walk_budget", [0, 5])
@pytest.mark.parametrize("criterion", [*SELECTIVE, *WALKED, *RARE_LABELS, "rare text"])
def test_either_plan_pages_through_the_same_events(criterion, walk_budget, monkeypatch):
    """A page read by walking time and one read from the criteria's index are the same page."""
    monkeypatch.setattr(page_plans, "WALK_BUDGET", walk_budget)
    monkeypatch.setattr(page_plans, "LABEL_WALK_BUDGET", walk_budget)
    monkeypatch.setattr(page_plans, "WALK_AGAIN_BUDGET", walk_budget)
    filter_json = {"text": {"query": "escalated -zz"}} if criterion == "rare text" else None
    filter_json = (
        filter_json
        or (SELECTIVE[criterion][0] if criterion in SELECTIVE else None)
        or {**WALKED, **RARE_LABELS}[criterion]
    )
    event_filter = EventFilter.model_validate({**filter_json, "occurred": HOUR})

    page = queries.first_page(event_filter, limit=7)
    seen = [e.id for e in page.events]
    for _ in range(3):
        if not page.next_token:
            break
        page = queries.next_page(page.next_token)
        seen += [e.id for e in page.events]

    expected = list(event_filter.ordered(Event.objects.all()).values_list("id", flat=True)[:28])
    assert seen == expected[: len(seen)]
    assert len(seen) == min(28, len(expected))


@pytest.mark.parametrize("again", [5, 0])
def test_a_filter_without_an_index_walks_again_before_its_planner(again, monkeypatch):
    """PostgreSQL: a page of related labels (no index of their own) whose first walk ran out of
    its budget walks again, longer (WALK_AGAIN_BUDGET), rather than let the planner read every
    event of the window; without that budget, the planner reads it. The same page either way."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite reads such labels from its FTS5 table past the walk")
    monkeypatch.setattr(page_plans, "LABEL_WALK_BUDGET", 0)
    monkeypatch.setattr(page_plans, "WALK_AGAIN_BUDGET", again)
    event_filter = EventFilter.model_validate(WALKED["related labels"])
    expected = list(event_filter.ordered(Event.objects.all()).values_list("id", flat=True)[:7])

    with CaptureQueriesContext(connection) as captured:
        page = page_plans.newest(event_filter, None, 7)

    assert [e.id for e in page.events] == expected and len(expected) == 7
    walks = [q["sql"] for q in captured.captured_queries if "'enable_sort', 'off'" in q["sql"]]
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('SELECT "events')]
    assert len(walks) == (1 if again else 0) and len(reads) == 1, captured.captured_queries
    assert page.rare is (False if again else None)


def test_a_time_window_reads_only_the_partitions_of_its_days():
    """PostgreSQL's log is partitioned by day (`events.partitions`): a window of an hour is read
    from its day's partition (two around midnight), never from the other days or the default."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's log is one table")
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'events_event_p%'")
        made = {name.removeprefix("events_event_") for (name,) in cursor.fetchall()}
    # A day with no partition of its own (yesterday, in a database created in the first hour
    # after midnight UTC: partitions are made from today on) is stored in the default partition.
    days = {
        day if day in made else "default"
        for day in (f"p{NOW - timedelta(hours=h):%Y%m%d}" for h in (0, 1))
    }
    found = plans(SELECTIVE["time"][0])

    for name in ("by_criteria", "count"):
        plan = found[name]
        read = set(re.findall(r" on events_event_(p\d{8}|default)\b", plan))
        assert read and read <= days, f"{name} reads {read}:\n{plan}"
        assert not FULL_SCAN["postgresql"].search(plan), plan
        if "default" not in days:  # (a partition made minutes ago may be read by another index)
            assert re.search(r"event_occurred_(id|brin)_p", plan), plan


@pytest.mark.parametrize(
    ("criteria", "walks"),
    [
        ({"related": {"id": ["acme.customer.7"]}}, False),
        ({"any_resource": {"id": ["acme.customer.7"]}}, False),
        (
            {"related": {"id": ["acme.customer.7"]}, "any_resource": {"labels": {"a": ["b*"]}}},
            False,
        ),
        ({"related": {"id": ["acme.customer.7"], "role": ["customer"]}}, True),
        ({"related": {"resources_in_roles": [["acme.customer.7", "customer"]]}}, True),
        ({"any_resource": {"id_prefix": ["acme.customer."]}}, True),
        ({"related": {"labels": {"a": ["b"]}}}, True),
    ],
)
def test_postgresql_plans_related_ids_alone_at_once_and_walks_other_row_criteria(criteria, walks):
    """Ids alone on a resource row are estimated from the rows' statistics; a role, a prefix or
    labels on the same row are not, so those pages walk time first (PostgreSQL's `newest`)."""
    event_filter = EventFilter.model_validate(criteria)
    assert (page_plans._walk_first(event_filter) is not None) is walks


@pytest.mark.parametrize("order", ["DESC", "ASC"])
@pytest.mark.parametrize(
    "prefix", [{"resource": {"id_prefix": ["acme.order.1"]}}, {"event": {"prefix": ["acme.invo"]}}]
)
def test_a_prefix_page_the_walk_found_too_few_for_is_read_sorted(prefix, order, monkeypatch):
    """PostgreSQL, whose estimate of a prefix's share can be far off: when the walk finds too
    few, the prefix's matches are read from its index and sorted (`page_plans._prefixed`), page
    after page the events the filter orders."""
    monkeypatch.setattr(page_plans, "WALK_BUDGET", 0)
    sorted_reads = []
    read = page_plans._sorted_after
    monkeypatch.setattr(page_plans, "_sorted_after", lambda f: sorted_reads.append(f) or read(f))
    event_filter = EventFilter.model_validate({**prefix, "occurred": HOUR, "order": order})

    page = queries.first_page(event_filter, limit=7)
    seen = [e.id for e in page.events]
    while page.next_token:
        page = queries.next_page(page.next_token)
        seen += [e.id for e in page.events]

    expected = list(event_filter.ordered(Event.objects.all()).values_list("id", flat=True))
    assert len(expected) > 14 and seen == expected
    assert bool(sorted_reads) == (connection.vendor == "postgresql")


@pytest.mark.parametrize(
    ("term", "part"),
    [
        ('"acme.order.4242"', '4242"'),  # a known end: the start left out
        (':"customer 4242"', '4242"'),
        (':"invoice 4242', " 4242"),  # no end (a glob's prefix): the start kept
        ('"acme.customer.42"', '.42"'),  # a short word: the start kept
        ("x 1234 abc 56 y", "1234 abc 56 "),
        ("acme.order", "acme.order"),  # no numbered word: the whole term
    ],
)
def test_the_numbered_part_leaves_out_a_long_words_start_only_beside_a_known_end(term, part):
    """pg_trgm's trigrams of a known word start (`  4`, ` 42`) are in every word starting so;
    the part leaves them out when the word is long and its end is known (`_numbered_part`)."""
    assert text_search._numbered_part(term) == part


@pytest.mark.parametrize(("query", "walked"), [("'\"acme.order.424\"'", False), ("gold", True)])
def test_a_text_term_few_newest_events_hold_is_read_from_the_index_without_a_walk(query, walked):
    """PostgreSQL: 3 of the newest 3,000 events hold one order's id, so a walk of time would find
    too few for a page: the trigram index is read at once, a few days at a time
    (`page_plans._rare_text`); a common word still walks. SQLite walks both (its FTS5 table is
    read past the walk)."""
    text_search._label_probed.clear()
    event_filter = EventFilter.model_validate({"text": {"query": query}})
    expected = list(event_filter.ordered(Event.objects.all()).values_list("id", flat=True))

    with CaptureQueriesContext(connection) as captured:
        page = queries.first_page(event_filter, limit=50)

    assert [e.id for e in page.events] == expected[:50]
    walks = [q["sql"] for q in captured.captured_queries if "enable_sort" in q["sql"]]
    if connection.vendor == "postgresql":
        assert bool(walks) == walked, captured.captured_queries
    if not walked:
        assert page.total == len(expected) == 3 and not page.total_is_estimate


def test_a_sample_says_how_many_newest_events_hold_two_pages():
    """Pure: 3 of 3,000 sampled events hold the term: 2 pages of 50 are in the newest 100,000;
    none held it: as if one had; a small log's sample is what it read."""
    assert text_search.Sample(3000, 3).newest_needed(50) == 100_000
    assert text_search.Sample(3000, 0).newest_needed(50) == 300_000
    assert text_search.Sample(500, 5).newest_needed(10) == 2_000


def test_a_rare_terms_first_page_is_read_from_the_reach_first(monkeypatch):
    """PostgreSQL: a rare text term's first page is read from where the newest events hold two
    pages at the sample's share (`rollups.reach`, from the hour rows) to the window's end first,
    then the rest of that day and the days before; the page is the scan's either way. The sample
    says 60 of 3,000 (so 200 events, ~2 of the log's hours); its own reading is tested above."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's sample of the newest events")
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    # The log's 24 hours end at NOW: a window ending at 23:00 yesterday early in the day.
    until = NOW if NOW - midnight > timedelta(hours=5) else midnight - timedelta(hours=1)
    window = {"since": (NOW - timedelta(days=2)).isoformat(), "until": until.isoformat()}
    event_filter = EventFilter.model_validate({"occurred": window, "text": {"query": "escalated"}})
    expected = list(event_filter.ordered(Event.objects.all()).values_list("id", flat=True))
    monkeypatch.setattr(page_plans, "rare_text", lambda query: text_search.Sample(3000, 60))
    reach = rollups.reach(event_filter.occurred.until, 200)
    day = until.replace(hour=0, minute=0, second=0, microsecond=0)
    assert day < reach < until - timedelta(hours=1), reach

    with CaptureQueriesContext(connection) as captured:
        page = page_plans.newest(event_filter, None, 2)
    reads = [q["sql"] for q in captured.captured_queries if "LIKE '%escalated%'" in q["sql"]]

    assert [e.id for e in page.events] == expected[:2]
    assert reach.isoformat(sep=" ") in reads[0] and len(reads) <= 3, reads
    # A sample that saw no match: from the day's start, as every other read by days.
    monkeypatch.setattr(page_plans, "rare_text", lambda query: text_search.Sample(3000, 0))
    with CaptureQueriesContext(connection) as captured:
        assert page_plans.newest(event_filter, None, 2).events == page.events
    reads = [q["sql"] for q in captured.captured_queries if "LIKE '%escalated%'" in q["sql"]]
    assert day.isoformat(sep=" ") in reads[0], reads
