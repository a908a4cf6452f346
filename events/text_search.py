"""Text search: one semantics on both backends, read from an index (issue 14).

An event's search text is its name and the compact JSON (keys sorted, non-ASCII kept) of its
resource, related and payload, Unicode case-folded (`str.casefold`: "Straße" and "STRASSE" both
fold to "strasse"). The write path stores it in `Event.search`; a query term matches when its
folded form is a substring of it. Because the text is made once, in Python, the same way for
both backends, neither jsonb's spacing and key order nor a database's case rules change a result.

The index: SQLite keeps an FTS5 table with the trigram tokenizer over the column
(`events_event_search`, external content: it stores no second copy of the text; kept by
triggers), PostgreSQL a pg_trgm GIN index (`event_search_trgm`). Both serve terms of 3 or more
characters; shorter terms and exclusions are tested row by row.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import orjson
from django.db import connection
from django.db.models import Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan

if TYPE_CHECKING:  # importable without Django's settings (bench/seed.py writes the column)
    from events.schema import Event

# The trigram index serves a substring of at least this many characters.
INDEXED_TERM = 3
SQLITE_INDEX = "events_event_search"
# Statements that build the SQLite index over `events_event.search` and keep it in step. An
# external-content FTS5 table maps the event's rowid: a migration that remakes events_event (or
# a VACUUM, which may renumber rowids) must run them again (`create_sqlite_index`).
SQLITE_INDEX_SQL = [
    f"DROP TABLE IF EXISTS {SQLITE_INDEX}",
    f"CREATE VIRTUAL TABLE {SQLITE_INDEX} USING fts5(search, content='events_event', "
    "content_rowid='rowid', tokenize='trigram case_sensitive 1')",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_INDEX}_insert AFTER INSERT ON events_event BEGIN "
    f"INSERT INTO {SQLITE_INDEX}(rowid, search) VALUES (new.rowid, new.search); END",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_INDEX}_delete AFTER DELETE ON events_event BEGIN "
    f"INSERT INTO {SQLITE_INDEX}({SQLITE_INDEX}, rowid, search) "
    "VALUES ('delete', old.rowid, old.search); END",
    f"CREATE TRIGGER IF NOT EXISTS {SQLITE_INDEX}_update AFTER UPDATE OF search ON events_event "
    f"BEGIN INSERT INTO {SQLITE_INDEX}({SQLITE_INDEX}, rowid, search) "
    "VALUES ('delete', old.rowid, old.search); "
    f"INSERT INTO {SQLITE_INDEX}(rowid, search) VALUES (new.rowid, new.search); END",
    f"INSERT INTO {SQLITE_INDEX}({SQLITE_INDEX}) VALUES ('rebuild')",
]
SQLITE_DROP_SQL = [
    f"DROP TRIGGER IF EXISTS {SQLITE_INDEX}_{kind}" for kind in ("insert", "delete", "update")
] + [f"DROP TABLE IF EXISTS {SQLITE_INDEX}"]


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


def indexed(query: str) -> bool:
    """Whether the trigram index can narrow the matches: every any-of term (or one all-of
    term) is long enough to have trigrams."""
    include, _, required = parse_text_query(query)
    if include and all(len(t) >= INDEXED_TERM for t in include):
        return True
    return any(len(t) >= INDEXED_TERM for t in required)


def text_q(query: str, *, use_index: bool = True) -> Q | None:
    """The query as a condition on `events_event` (None when it has no terms).

    On SQLite, with `use_index`, the indexable terms are one FTS5 MATCH (rows found through the
    trigram index); without it (a newest-first walk testing each event) every term is an
    `instr` on the column. PostgreSQL's planner picks the GIN index for `LIKE` by itself.
    """
    include, exclude, required = parse_text_query(query)
    if not (include or exclude or required):
        return None
    sqlite = connection.vendor == "sqlite"
    long_include = bool(include) and all(len(t) >= INDEXED_TERM for t in include)
    matched: list[str] = []  # FTS5 MATCH expressions, ANDed
    q = Q()
    if include:
        if sqlite and use_index and long_include:
            matched.append("(" + " OR ".join(_phrase(t) for t in include) + ")")
        else:
            either = Q()
            for term in include:
                either |= _contains(term)
            q &= either
    for term in required:
        if sqlite and use_index and len(term) >= INDEXED_TERM:
            matched.append(_phrase(term))
        else:
            q &= _contains(term)
    for term in exclude:
        q &= ~_contains(term)
    if matched:
        rows = RawSQL(
            f"SELECT id FROM events_event WHERE rowid IN (SELECT rowid FROM {SQLITE_INDEX} "
            f"WHERE {SQLITE_INDEX} MATCH %s)",
            [" AND ".join(matched)],
        )
        q &= Q(id__in=rows)
    return q


def _phrase(term: str) -> str:
    """An FTS5 phrase: with the trigram tokenizer, the term as a substring."""
    return '"' + term.replace('"', '""') + '"'


def _contains(term: str) -> Q:
    if connection.vendor == "sqlite":  # instr: case-sensitive (SQLite's LIKE folds ASCII)
        return Q(GreaterThan(StrIndex("search", Value(term)), 0))
    return Q(search__contains=term)  # LIKE '%term%': pg_trgm's GIN index serves it
