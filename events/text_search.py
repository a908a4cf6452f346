"""Text search: one semantics on both backends, indexed on PostgreSQL (issue 14).

An event's search text is its name and the compact JSON (keys sorted, non-ASCII kept) of its
resource, related and payload, Unicode case-folded (`str.casefold`: "Straße" and "STRASSE" both
fold to "strasse"). The write path stores it in `Event.search`; a query term matches when its
folded form is a substring of it. Because the text is made once, in Python, the same way for
both backends, neither jsonb's spacing and key order nor a database's case rules change a result.

The index: on PostgreSQL a pg_trgm GIN index (`event_search_trgm`) serves `LIKE '%term%'` for
terms of 3 or more characters (shorter terms and exclusions are tested row by row). SQLite tests
each event's column with `instr` (a page walks the window newest first): an FTS5 trigram table was
measured and rejected, its index alone wrote ~1,100–1,700 events/s against ~72,000 without
(search texts of ~540 characters), a quarter of the ingest rate (docs/scaling.md).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import orjson
from django.db import connection
from django.db.models import Q, Value
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan

if TYPE_CHECKING:  # importable without Django's settings (bench/ingest.py builds raw rows)
    from events.schema import Event


# pg_trgm's index serves a substring of at least this many characters.
INDEXED_TERM = 3


def fold(text: str) -> str:
    """The one case rule of text search: full Unicode case folding."""
    return text.casefold()


def search_text(event: Event) -> str:
    """What `Event.search` holds for an event (written by ingest)."""
    return search_text_of(event.event, event.resource, event.related, event.payload)


def search_text_of(name: str, resource: dict, related: list, payload: dict) -> str:
    """`search_text` from an event's parts (the backfill of migration 0009 reads them)."""
    return fold(" ".join((name, _json(resource), _json(related), _json(payload))))


def _json(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def parse_text_query(query: str) -> tuple[list[str], list[str], list[str]]:
    """Split a query into folded (any-of, none-of, all-of) terms: `a "b c" -d !e +f`."""
    include: list[str] = []
    exclude: list[str] = []
    required: list[str] = []
    try:
        terms = shlex.split(query, posix=True)
    except ValueError:  # an unbalanced quote: read it as plain words
        terms = query.replace('"', " ").split()
    for term in terms:
        if term[:1] in ("-", "!") and len(term) > 1:
            exclude.append(fold(term[1:]))
        elif term[:1] == "+" and len(term) > 1:
            required.append(fold(term[1:]))
        elif term:
            include.append(fold(term))
    return include, exclude, required


def text_matches(query: str, text: str) -> bool:
    """Whether a query matches a search text (`search_text`): the in-memory evaluator."""
    include, exclude, required = parse_text_query(query)
    if include and not any(t in text for t in include):
        return False
    if any(t in text for t in exclude):
        return False
    return all(t in text for t in required)


def text_q(query: str, *, use_index: bool = True) -> Q | None:
    """The query as a condition on `events_event` (None when it has no terms).

    `use_index=False` (a newest-first walk testing each event) keeps PostgreSQL off the trigram
    index, which its planner would otherwise pick for a common term and read every match of.
    """
    include, exclude, required = parse_text_query(query)
    if not (include or exclude or required):
        return None
    q = Q()
    if include:
        either = Q()
        for term in include:
            either |= _contains(term, use_index)
        q &= either
    for term in required:
        q &= _contains(term, use_index)
    for term in exclude:
        q &= ~_contains(term, False)
    return q


def _contains(term: str, use_index: bool) -> Q:
    # LIKE '%term%' is what pg_trgm's GIN index serves; a term under 3 characters has no trigram
    # and would read the whole index, so it (like SQLite, and a walk) uses instr / strpos, which
    # no index serves: the same substring test, case-sensitive (SQLite's LIKE folds ASCII).
    if use_index and connection.vendor == "postgresql" and len(term) >= INDEXED_TERM:
        return Q(search__contains=term)
    return Q(GreaterThan(StrIndex("search", Value(term)), 0))
