"""Text search has one semantics: the SQL of either backend (through its trigram index or row by
row) finds exactly what the in-memory evaluator finds, for any text (issue 14)."""

from __future__ import annotations

import json
import os
import shlex
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.db import connection, transaction
from django.db.models import Q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import page_plans, text_search
from events.filters import EventFilter
from events.ingest import ingest
from events.models import Event
from events.retention import prune
from events.text_search import FTS_TABLE, fts_match, search_text
from events.totals import by_criteria
from tests.factories import event_data

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
# Letters whose case folding differs between databases and languages (ß → ss, İ → i̇, final
# sigma, ẞ), CJK, emoji (and one with a modifier), digits (numbered words: PostgreSQL asks its
# index for those, `text_search.trigram_part`), and the characters of JSON and of LIKE / FTS5
# syntax.
LETTERS = list("aAbBsSiIß42٤") + ["ẞ", "İ", "ı", "Σ", "σ", "ς", "Ω", "中", "文", "😀", "👍🏽"]
PUNCTUATION = list(" \"\\:,{}[]%_*'-+!")
words = st.lists(st.sampled_from(LETTERS + PUNCTUATION), max_size=8).map("".join)
values = st.recursive(
    st.one_of(words, st.integers(-5, 5), st.booleans(), st.none()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def events(draw):
    """An event as a client sends it: JSON with odd spacing, keys in any order."""
    payload = draw(st.dictionaries(words, values, max_size=4))
    labels = draw(st.dictionaries(words.filter(lambda k: k.strip()), words, max_size=3))
    labels.pop("prefect.resource.id", None)
    data = event_data(
        draw(st.sampled_from(["acme.Straße.created", "ΣΊΣΥΦΟΣ.ok", "中文.x", "plain.name"])),
        draw(st.sampled_from(["acme.order.İ", "acme.order.1"])),
        labels=dict(reversed(labels.items())) if draw(st.booleans()) else labels,
        payload=payload,
        occurred=NOW - timedelta(seconds=draw(st.integers(0, 3600))),
        id=uuid.UUID(int=draw(st.integers(0, 2**128 - 1))),
    )
    separators = draw(st.sampled_from([(",", ":"), (" , ", " :  "), (",\n  ", ": ")]))
    text = json.dumps(data, separators=separators, ensure_ascii=draw(st.booleans()))
    return json.loads(text)


@st.composite
def queries(draw, stored: list[dict], texts: list[str]):
    """Terms taken from the events as sent or from their search text (3 to 12 characters, across
    JSON punctuation: what the trigram indexes serve), in any case, or made up, maybe signed."""
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        source = draw(st.sampled_from(["sent", "search", "made up"]))
        if source == "sent" and stored:
            sent = json.dumps(draw(st.sampled_from(stored)), ensure_ascii=False)
            start = draw(st.integers(0, len(sent) - 1))
            term = sent[start : start + draw(st.integers(1, 6))]
        elif source == "search" and texts:
            text = draw(st.sampled_from(texts))
            start = draw(st.integers(0, max(0, len(text) - 3)))
            term = text[start : start + draw(st.integers(3, 12))]
        else:
            term = draw(words)
        term = draw(st.sampled_from([term, term.upper(), term.lower(), term.casefold()]))
        terms.append(draw(st.sampled_from(["", "-", "+", "!"])) + term)
    return " ".join(terms)


@settings(
    max_examples=int(os.environ.get("EVENTSITE_PROPERTY_EXAMPLES", 200)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_sql_and_in_memory_text_search_agree_on_any_text(data):
    stored = data.draw(st.lists(events(), max_size=8, unique_by=lambda e: e["id"]))
    with transaction.atomic():
        result = ingest(stored, source="property-test")
        assert result.ok, result.rejected
        texts = sorted(search_text(e) for e in result.stored)  # (an order of its own)
        query = data.draw(queries(stored, texts))
        event_filter = EventFilter.model_validate({"text": {"query": query}})
        order = event_filter.ordered(Event.objects.all()).query.order_by
        plans = {
            "in": event_filter.apply(Event.objects.all()),
            "walk": event_filter.apply(Event.objects.all(), semijoin="exists"),
            # SQLite's FTS5 table when a term is long enough (`text_search.indexed_text`).
            "by_criteria": event_filter.apply(Event.objects.all(), by_criteria=True),
        }
        found = {name: [e.id for e in rows.order_by(*order)] for name, rows in plans.items()}
        # PostgreSQL past the walk: a few days at a time (`page_plans._newest_by_days`).
        found["by_days"] = [e.id for e in page_plans._newest_by_days(event_filter, Q(), 100)]
        with pytest.MonkeyPatch.context() as patch:
            # SQLite: trigrams each in 2 events or more are common, two of them together in
            # fewer are not (`text_search._narrowing_trigrams`).
            patch.setattr(text_search, "FEW_ROWS", 2)
            patch.setattr(text_search, "MANY_ROWS", 6)
            text_search._probed.clear()
            common = event_filter.apply(Event.objects.all(), by_criteria=True)
            found["by_criteria, common trigrams"] = [e.id for e in common.order_by(*order)]
            text_search._probed.clear()
        total = event_filter.apply(Event.objects.all()).count()
        total_by_criteria = by_criteria(event_filter).count()
        transaction.set_rollback(True)

    expected = [e.id for e in event_filter.evaluate(result.stored)]
    assert found == dict.fromkeys(found, expected), query
    assert total == total_by_criteria == len(expected)


def find(query: str) -> list[str]:
    """The names of the events a query finds, the same row by row and through the text index."""
    event_filter = EventFilter.model_validate({"text": {"query": query}})
    found = sorted(e.event for e in event_filter.apply(Event.objects.all()))
    assert sorted(e.event for e in by_criteria(event_filter)) == found, query
    return found


def test_text_search_folds_case_the_unicode_way():
    assert ingest(
        [
            event_data("a.street", payload={"where": "Große Straße"}),
            event_data("a.city", payload={"where": "İSTANBUL"}),
            event_data("a.greek", payload={"who": "ΟΔΥΣΣΕΥΣ"}),
            event_data("a.cjk", payload={"note": "東京 🗼"}),
        ],
        source="test",
    ).ok

    assert find("STRASSE") == find("straße") == ["a.street"]
    assert find("i\u0307stanbul") == find("İstanbul") == ["a.city"]
    assert find("οδυσσευς") == find("Οδυσσεύς".replace("ύ", "υ")) == ["a.greek"]
    assert find("東京") == find("🗼") == ["a.cjk"]


def test_text_search_reads_json_compact_with_sorted_keys_whatever_was_sent():
    sent = '{"zeta" :  1 ,\n "alpha":"x y"}'
    assert ingest([event_data("a.sent", payload=json.loads(sent))], source="test").ok

    assert find('\'"alpha":"x y","zeta":1\'') == ["a.sent"]
    assert find('"\\"zeta\\" :  1"') == []


def test_short_terms_quotes_and_like_wildcards_are_plain_substrings():
    assert ingest(
        [
            event_data("a.percent", payload={"rate": "5%_off"}),
            event_data("a.quote", payload={"said": 'he said "hi"'}),
            event_data("a.other", payload={"rate": "50 off"}),
        ],
        source="test",
    ).ok

    assert find("%_") == ["a.percent"]
    assert find("5%_off") == ["a.percent"]
    assert find("'\"hi\\\"'") == ["a.quote"]
    assert find("+off -50") == ["a.percent"]


def test_the_search_column_is_the_in_memory_text():
    data = event_data("a.x", labels={"b": "B", "a": "Ä"}, payload={"k": ["ß", 1]})
    assert ingest([data], source="test").ok

    row = Event.objects.get()
    assert row.search == search_text(row.as_schema())
    assert (
        row.search == 'a.x {"a":"ä","b":"b","prefect.resource.id":"acme.order.1"} [] {"k":["ss",1]}'
    )


def test_deleted_events_leave_the_index():
    result = ingest([event_data("a.gone", payload={"w": "vanish"})], source="test")
    assert ingest([event_data("a.kept", payload={"w": "vanish"})], source="test").ok
    Event.objects.filter(id=result.stored[0].id).delete()

    assert find("vanish") == ["a.kept"]


def fts_check():
    """FTS5's own check of the index against the table's text (raises when they differ)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES ('integrity-check', 1)"
            )


def test_the_text_index_follows_inserts_deletes_changes_and_retention(settings):
    settings.EVENTSITE_EVENT_RETENTION = timedelta(days=7)
    result = ingest(
        [
            event_data("a.old", payload={"w": "expired words"}, ago=timedelta(days=8)),
            event_data("a.changed", payload={"w": "first words"}),
            event_data("a.kept", payload={"w": "kept words"}),
            event_data("a.gone", payload={"w": "deleted words"}),
        ],
        source="test",
    )
    assert result.ok
    Event.objects.filter(event="a.changed").update(search="a.changed second words")
    Event.objects.filter(event="a.gone").delete()
    assert prune() == 1

    fts_check()
    assert find("words") == ["a.changed", "a.kept"]
    assert find("second") == ["a.changed"]
    assert find("first") == find("expired") == find("deleted") == []


# What FTS5's query language reads as syntax: a user's term means these characters, no more.
FTS5_SYNTAX = [
    '"',
    '""',
    '"*',
    "*",
    "a*",
    "AND",
    "OR",
    "NOT",
    "NEAR(ab cd)",
    "^start",
    "search:x",
    "{search}:x",
    "(ab)",
    "a + b",
    "-x",
    "x OR y",
    "'q\"",
    "\\",
]


@pytest.mark.parametrize("text", FTS5_SYNTAX)
def test_fts5_syntax_in_a_term_is_a_plain_substring(text):
    assert ingest(
        [
            event_data("a.has", payload={"said": f"<{text}>"}),
            event_data("a.other", payload={"said": "ab cd start x y AND OR NOT search"}),
        ],
        source="test",
    ).ok
    # The term as the search text holds it (JSON: a quote is \", a backslash \\), one quoted
    # word of the query whatever it contains.
    written = orjson.dumps(f"<{text}>").decode()[1:-1]

    assert find(shlex.quote(written)) == ["a.has"]
    if written[1] not in "-+!":  # (a leading sign is the query's own syntax: not, must)
        assert find(shlex.quote(written[1:])) == ["a.has"]
        assert "a.has" in find(shlex.quote(written[1:-1]))


def test_a_query_of_fts5_syntax_answers_through_the_api_and_the_feed(api_client, logged_in_client):
    assert ingest([event_data("a.x", payload={"said": 'NEAR("a" b)* AND ^c'})], source="test").ok
    for query in ['NEAR("a" b)*', '"AND ^c"', "'\")*'", '")*', "*** AND", "NOT OR"]:
        response = api_client.post(
            "/api/events/filter", {"filter": {"text": {"query": query}}}, format="json"
        )
        assert response.status_code == 200, (query, response.content[:300])
        response = logged_in_client.get("/events/", {"q": query})
        assert response.status_code == 200, query


@settings(max_examples=200, deadline=None)
@given(query=st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_any_query_is_a_valid_fts5_expression(query):
    """Whatever a user types, the MATCH expression made of it parses (a 500 is a defect)."""
    if connection.vendor != "sqlite" or (match := fts_match(query)) is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", [match])
        assert cursor.fetchone() == (0,)
