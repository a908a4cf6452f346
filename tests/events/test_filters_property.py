"""Property: the SQL evaluator and the in-memory evaluator of EventFilter always agree."""

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import page_plans, row_pages, text_search
from events.filters import EventFilter
from events.ingest import store
from events.models import Event
from events.schema import Event as WireEvent

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
NAMES = [
    "acme.order.created",
    "acme.order.shipped",
    "acme.pay",
    "prefect.log.write",
    "Acme.order.x",
]
IDS = ["a.1", "a.2", "b.1", "prefect.flow-run.x", "prefect.tag.eu"]
KEYS = ["color", "size", "prefect.resource.name"]
# Non-ASCII and JSON-escaped values: PostgreSQL tests an exact value by jsonb containment and a
# glob by a regex on the extracted text, SQLite by GLOB; all must agree with memory.
VALUES = ["red", "blue", "blue-ish", "Red", "x y", "", "Straße", 'q"\\']
ROLES = ["tag", "owner", "customer"]
WORDS = ["gold", "Silver", "order", "blue", "eu", "x"]

labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)


@st.composite
def events(draw):
    related = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "prefect.resource.id": st.sampled_from(IDS),
                    "prefect.resource.role": st.sampled_from(ROLES),
                }
            ).flatmap(lambda r: labels.map(lambda extra: {**extra, **r})),
            max_size=3,
        )
    )
    return WireEvent(
        occurred=NOW - timedelta(seconds=draw(st.integers(0, 3 * 86400))),
        event=draw(st.sampled_from(NAMES)),
        resource={**draw(labels), "prefect.resource.id": draw(st.sampled_from(IDS))},
        related=related,
        payload={"note": " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=3)))},
        id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
    )


pattern = st.builds(
    lambda neg, parts: ("!" if neg else "") + "".join(parts),
    st.booleans(),
    st.lists(
        st.sampled_from(
            ["*", "?", "b", "lue", "-ish", "red", "R", "x", "a.", "1", "Straße", 'q"\\']
        ),
        min_size=0,
        max_size=4,
    ),
)
patterns = st.one_of(pattern, st.lists(pattern, max_size=3))
# Up to every key at once (globs, `!` negations, keys the event lacks): each key is its own
# JSON extraction on SQLite and its own containment or regex on PostgreSQL, all ANDed.
label_spec = st.dictionaries(st.sampled_from([*KEYS, "prefect.resource.id"]), patterns, max_size=4)
id_list = st.lists(st.sampled_from(IDS), max_size=2)
prefix_list = st.lists(st.sampled_from(["a.", "prefect.", "b", "", "prefect.tag."]), max_size=2)

related_filter = st.fixed_dictionaries(
    {},
    optional={
        "id": id_list,
        "role": st.lists(st.sampled_from(ROLES), max_size=2),
        "resources_in_roles": st.lists(
            st.tuples(st.sampled_from(IDS), st.sampled_from(ROLES)), max_size=2
        ),
        "labels": st.one_of(
            label_spec,
            st.builds(
                lambda r, rest: {"prefect.resource.role": r, **rest},
                st.sampled_from(ROLES),
                label_spec,
            ),
        ),
    },
)
any_filter = st.fixed_dictionaries(
    {}, optional={"id": id_list, "id_prefix": prefix_list, "labels": label_spec}
)
text_query = st.lists(
    st.builds(
        lambda sign, word: sign + word, st.sampled_from(["", "-", "+", "!"]), st.sampled_from(WORDS)
    ),
    min_size=1,
    max_size=3,
).map(" ".join)

filters = st.fixed_dictionaries(
    {},
    optional={
        "occurred": st.builds(
            lambda a, b: {
                "since": (NOW - timedelta(seconds=max(a, b))).isoformat(),
                "until": (NOW - timedelta(seconds=min(a, b))).isoformat(),
            },
            st.integers(0, 3 * 86400),
            st.integers(0, 3 * 86400),
        ),
        "event": st.fixed_dictionaries(
            {},
            optional={
                "prefix": st.lists(
                    st.sampled_from(["acme.", "acme.order.", "prefect.", "A", ""]), max_size=2
                ),
                "exclude_prefix": st.lists(
                    st.sampled_from(["acme.order.", "prefect."]), max_size=1
                ),
                "name": st.lists(st.sampled_from(NAMES), max_size=2),
                "exclude_name": st.lists(st.sampled_from(NAMES), max_size=2),
            },
        ),
        "resource": st.fixed_dictionaries(
            {},
            optional={
                "id": id_list,
                "id_prefix": prefix_list,
                "labels": label_spec,
                "distinct": st.booleans(),
            },
        ),
        "related": st.one_of(related_filter, st.lists(related_filter, min_size=1, max_size=2)),
        "any_resource": st.one_of(any_filter, st.lists(any_filter, min_size=1, max_size=2)),
        "text": st.builds(lambda q: {"query": q}, text_query),
        "order": st.sampled_from(["ASC", "DESC"]),
    },
)


@settings(
    max_examples=int(os.environ.get("EVENTSITE_PROPERTY_EXAMPLES", 300)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(stored=st.lists(events(), max_size=12, unique_by=lambda e: e.id), filter_json=filters)
def test_sql_and_in_memory_evaluation_agree(stored, filter_json):
    event_filter = EventFilter.model_validate(filter_json)
    with transaction.atomic():
        store(stored, source="property-test")
        in_sql = [e.id for e in event_filter.ordered(Event.objects.all())]
        in_memory = [e.id for e in event_filter.evaluate(stored)]
        total = event_filter.apply(Event.objects.all()).count()
        # The other plans a page may take (queries._newest): a walk with EXISTS, and a read
        # by the criteria's own indexes.
        order = event_filter.ordered(Event.objects.all()).query.order_by
        walked = event_filter.apply(Event.objects.all(), semijoin="exists").order_by(*order)
        by_criteria = event_filter.apply(Event.objects.all(), by_criteria=True).order_by(*order)
        walked, by_criteria = [e.id for e in walked], [e.id for e in by_criteria]
        # A filter with a criterion whose resource rows a page can be read from: its page
        # read from them, their events checked against the other criteria (`row_pages.from_rows`).
        rows_first = event_filter.rows_first()
        from_rows = (
            row_pages.from_rows(event_filter, rows_first[0], None, 20, others=rows_first[2])
            if rows_first
            else None
        )
        # Resource labels alone: the walk over the primary resource rows (`row_pages.walk_rows`).
        labels = event_filter.labels_alone()
        rows_walked = (
            [e.id for e in row_pages.walk_rows(event_filter, labels, None, 20)]
            if labels is not None
            else None
        )
        # Labels read from the events whose search text holds their terms (`_read_narrowed`:
        # the FTS5 table on SQLite, the trigram index on PostgreSQL).
        specs = page_plans._label_specs(event_filter)
        narrowed = None
        if specs and not event_filter.distinct and connection.vendor == "sqlite":
            match = text_search.label_fts_match(specs)
            narrowed = Q(text_search.FtsRows(match)) if match else None
        elif specs and not event_filter.distinct:
            resource = event_filter.resource.labels if event_filter.resource else None
            narrowed = text_search.label_search_q(specs, contained=resource)
        read = (
            page_plans._read_narrowed(event_filter, narrowed, Q(), 20)
            if narrowed is not None
            else None
        )
        transaction.set_rollback(True)

    assert in_sql == in_memory
    assert total == len(in_memory)
    assert walked == by_criteria == in_memory
    if rows_walked is not None:
        assert rows_walked == in_memory[:20]
    if read is not None:
        assert [e.id for e in read.events] == in_memory[:20]
        # PostgreSQL reads a few day partitions at a time until the page is full: it counts
        # only when it read them all (SQLite reads and counts every match).
        full = connection.vendor == "postgresql" and len(in_memory) > 20
        assert read.count == (None if full else len(in_memory))
    if from_rows:
        assert [e.id for e in from_rows.events] == in_memory
        assert from_rows.count == len(in_memory)
