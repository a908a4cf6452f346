"""Text search has one semantics: the SQL of either backend (through its trigram index or row by
row) finds exactly what the in-memory evaluator finds, for any text (issue 14)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.filters import EventFilter
from events.ingest import ingest
from events.models import Event
from events.text_search import search_text
from tests.factories import event_data

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)
# Letters whose case folding differs between databases and languages (ß → ss, İ → i̇, final
# sigma, ẞ), CJK, emoji (and one with a modifier), and the characters of JSON and of LIKE / FTS5
# syntax.
LETTERS = list("aAbBsSiIß") + ["ẞ", "İ", "ı", "Σ", "σ", "ς", "Ω", "中", "文", "😀", "👍🏽"]
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
def queries(draw, stored: list[dict]):
    """Terms taken from the events' own text (in any case) or made up, each maybe signed."""
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        if stored and draw(st.booleans()):
            source = json.dumps(draw(st.sampled_from(stored)), ensure_ascii=False)
            start = draw(st.integers(0, len(source) - 1))
            term = source[start : start + draw(st.integers(1, 6))]
            term = draw(st.sampled_from([term, term.upper(), term.lower(), term.casefold()]))
        else:
            term = draw(words)
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
    query = data.draw(queries(stored))
    event_filter = EventFilter.model_validate({"text": {"query": query}})
    with transaction.atomic():
        result = ingest(stored, source="property-test")
        assert result.ok, result.rejected
        order = event_filter.ordered(Event.objects.all()).query.order_by
        plans = {
            "in": event_filter.apply(Event.objects.all()),
            "walk": event_filter.apply(Event.objects.all(), semijoin="exists"),
            "by_criteria": event_filter.apply(Event.objects.all(), by_criteria=True),
        }
        found = {name: [e.id for e in rows.order_by(*order)] for name, rows in plans.items()}
        total = event_filter.apply(Event.objects.all()).count()
        transaction.set_rollback(True)

    expected = [e.id for e in event_filter.evaluate(result.stored)]
    assert found == dict.fromkeys(plans, expected), query
    assert total == len(expected)


def find(query: str) -> list[str]:
    event_filter = EventFilter.model_validate({"text": {"query": query}})
    return sorted(e.event for e in event_filter.apply(Event.objects.all()))


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
