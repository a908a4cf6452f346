"""Text search: one semantics on both backends, indexed on PostgreSQL (issue 14).

An event's search text is its name and the compact JSON (keys sorted, non-ASCII kept) of its
resource, related and payload, Unicode case-folded (`str.casefold`: "Straße" and "STRASSE" both
fold to "strasse"). The write path stores it in `Event.search`; a query term matches when its
folded form is a substring of it. Because the text is made once, in Python, the same way for
both backends, neither jsonb's spacing and key order nor a database's case rules change a result.

The index serves terms of 3 or more characters; shorter terms and exclusions are tested row by
row (`instr` / `strpos`, which no index serves). On PostgreSQL a pg_trgm GIN index
(`event_search_trgm`, migration 0009) serves `LIKE '%term%'`, or `LIKE '%part%'` for the part
of a term around its numbered words with `strpos` testing the term (`trigram_part`). On SQLite
an FTS5 trigram table (`events_event_fts`, migration 0012, kept by triggers) narrows a read to
the rows holding each of a term's trigrams, which `instr` then confirms (`text_q(indexed=True)`):
a page reads it only when text is its one indexed criterion and a walk of the window found too
few (`page_plans.newest`).
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from django.db import connection
from django.db.models import BooleanField, F, Func, Q, Value
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan

from events.filter_sql import containable, name_q
from events.schema import RESOURCE_NAME, RESOURCE_ROLE

if TYPE_CHECKING:  # importable without Django's settings (bench/ingest.py builds raw rows)
    from events.schema import Event


# pg_trgm's and FTS5's trigram indexes serve a substring of at least this many characters.
INDEXED_TERM = 3
# SQLite's FTS5 trigram table over `events_event.search` (migration 0012).
FTS_TABLE = "events_event_fts"
# Trigrams of a term in fewer events than FEW_ROWS together (3 % of 1M) narrow an FTS5 read,
# each of them in fewer than MANY_ROWS (up to which PROBES of a term's trigrams are counted);
# remembered PROBE_TTL seconds (`_narrowing_trigrams`).
FEW_ROWS = 30_000
MANY_ROWS = 60_000
PROBES = 4
PROBE_TTL = 60.0


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


def text_q(query: str, *, use_index: bool = True, indexed: bool = False) -> Q | None:
    """The query as a condition on `events_event` (None when it has no terms).

    `use_index=False` (a newest-first walk testing each event) keeps PostgreSQL off the trigram
    index, which its planner would otherwise pick for a common term and read every match of.
    `indexed=True` (SQLite, `indexed_text`) adds the rows the FTS5 table finds for the terms:
    SQLite, which has no statistics, then reads those rows first, whatever their number.
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
    if indexed and connection.vendor == "sqlite" and (match := fts_match(query)) is not None:
        q &= Q(FtsRows(match))
    return q


def indexed_text(query: str) -> bool:
    """Whether SQLite's FTS5 table may narrow the query: every any-of term, or one required
    term, has 3 characters or more (`fts_match` then says whether it does)."""
    include, _, required = parse_text_query(query)
    return bool(include and all(map(_indexable, include))) or any(map(_indexable, required))


def fts_match(query: str) -> str | None:
    """An FTS5 MATCH expression that finds every event the query finds and few others (`instr`
    drops those), or None when the index cannot narrow the query to few rows (SQLite).

    A term is looked up by the AND of up to two of its trigrams that are together in fewer
    than FEW_ROWS events (`_narrowing_trigrams`); an any-of term without one, or too short,
    leaves the any-of terms out, a required one just itself. Each trigram is a 3-character FTS5
    string, quotes doubled, so nothing a user types is read as FTS5 syntax (`*`, `AND`, `NEAR`,
    `^`, a column name) and each string is one token (the table keeps no positions, so it
    has no phrases).
    """
    include, _, required = parse_text_query(query)
    parts = []
    lookups = [_narrowing_trigrams(t) if _indexable(t) else None for t in include]
    if lookups and all(lookups):
        parts.append(" OR ".join(f"({_and(grams)})" for grams in lookups))
    for term in required:
        if _indexable(term) and (grams := _narrowing_trigrams(term)):
            parts.append(_and(grams))
    return " AND ".join(f"({p})" for p in parts) if parts else None


def _indexable(term: str) -> bool:
    # The FTS5 query parser reads a NUL as the end of its input.
    return len(term) >= INDEXED_TERM and "\x00" not in term


def _and(grams: list[str]) -> str:
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


# Characters of nearly every event's search text (JSON syntax, lower-case ASCII letters): a
# trigram with others (digits, other scripts, rarer punctuation) is tried first, as likelier rare.
_COMMON = frozenset('abcdefghijklmnopqrstuvwxyz .":,{}[]_-')
_probed: dict[str, tuple[float, list[str] | None]] = {}


def _narrowing_trigrams(term: str) -> list[str] | None:
    """Two or fewer trigrams of `term` whose rows FTS5 reads quickly and that together are in
    fewer than FEW_ROWS events ([one] if a trigram is in none); None when no such trigrams
    were found.

    FTS5 reads the whole list of rows of each trigram of a MATCH (~50 ns a row): a trigram in
    most events (`acm` of "acme.order.4242") costs ~50 ms at 1M even in an AND with a rare one,
    so only trigrams in fewer than MANY_ROWS events are used (`_trigram_rows` counts up to
    PROBES of them, likelier rare first). The two least common: if one is in fewer than
    FEW_ROWS events, those under FEW_ROWS (as the AND is no larger); else their AND is counted
    too (`"acme.customer.42"`: `.42` in 31,778 events and `42"` in 37,320, both in 2,003, read
    in ~2 ms against ~100 ms to walk 42k events for a page of 50). Remembered for PROBE_TTL
    seconds: any trigrams of the term find every match, so a stale choice costs time, never a
    result.
    """
    now = time.monotonic()
    if (known := _probed.get(term)) and now - known[0] < PROBE_TTL:
        return known[1]
    counted = sorted((rows, gram) for gram, rows in _trigram_rows(term).items())
    few = [gram for rows, gram in counted[:2] if rows < FEW_ROWS]
    usable = [gram for rows, gram in counted[:2] if rows < MANY_ROWS]
    found: list[str] | None = None
    if counted and counted[0][0] == 0:  # no event has it: nor the term
        found = [counted[0][1]]
    elif few:
        found = few
    elif len(usable) == 2 and _rows(usable) < FEW_ROWS:
        found = usable
    if len(_probed) > 1000:
        _probed.clear()
    _probed[term] = (now, found)
    return found


def _trigram_rows(term: str) -> dict[str, int]:
    """How many events hold each of up to PROBES of the term's trigrams (counted up to
    MANY_ROWS), those with digits or rarer characters first; stops at one in no event, or at
    two in fewer than FEW_ROWS (enough for `_narrowing_trigrams`)."""
    grams = list(dict.fromkeys(term[i : i + INDEXED_TERM] for i in range(len(term) - 2)))
    grams.sort(key=lambda g: -sum(c not in _COMMON for c in g))
    counts: dict[str, int] = {}
    for gram in grams[:PROBES]:
        counts[gram] = rows = _rows([gram])
        if rows == 0 or sum(n < FEW_ROWS for n in counts.values()) == 2:
            break
    return counts


def _rows(grams: list[str]) -> int:
    """The events holding all of `grams`, counted up to MANY_ROWS (FTS5 reads their lists)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} "
            f"MATCH %s LIMIT {MANY_ROWS})",
            [_and(grams)],
        )
        return cursor.fetchone()[0]


# --- resource labels ------------------------------------------------------------------------------

# A label value's trigrams are probed up to LABEL_PROBES (each counted up to FEW_ROWS): a typo or
# a rare number can be anywhere in it, and its characters are as common as the JSON around them.
# Up to LABEL_GRAMS of the rarest are looked up together, and the read is made only when they
# leave at most LABEL_FEW_ROWS events (each read and tested: 4-9 µs at 1M, 2,038 in 7 ms).
LABEL_PROBES = 8
LABEL_GRAMS = 3
LABEL_FEW_ROWS = 3000
# A key with more patterns than this is not looked up (each is probed): it narrows nothing.
LABEL_TERMS = 8
# A rare text term is read newest first from where the newest events hold this many pages of
# matches at the sample's share (`Sample.newest_needed`).
REACH_MARGIN = 2
# PostgreSQL reads a key's terms from its trigram index when at most LABEL_FEW_HITS of the newest
# LABEL_SAMPLE events hold them (0.5 %; `label_search_q`): walking time for 50 such events would
# read 10k events or more, and more again when the glob matches few of them (`Invoice 42*7`:
# its term `:"invoice 42` in 0.17 % of events, the glob in 0.02 %; walked, then planned by
# regex: 290-336 ms at 1M). The read goes a few day partitions at a time
# (`page_plans._read_narrowed`), so a term common earlier in the window is not read whole.
LABEL_SAMPLE = 3000
LABEL_FEW_HITS = 15
_label_probed: dict[str, tuple[float, object]] = {}


def label_term(key: str, pattern: str) -> str | None:
    """The part of the search text every event with a resource (primary or related) whose label
    `key` matches the glob `pattern` holds, as `search_text_of` writes it: folded
    `"key":"value"` for an exact value, `"key":"prefix` for a glob (up to its first `*`, `?`
    or `[`). None when it implies nothing: a negation, a glob starting with a wildcard, the
    role (a row's column, and the primary resource's is in no JSON).

    JSON escapes a string character by character (`"` and `\\` and control characters; orjson
    keeps other characters as they are), and `fold` folds each character alone, so the escaped
    and folded prefix of a value is the prefix of its escaped and folded whole."""
    if key == RESOURCE_ROLE or pattern.startswith("!"):
        return None
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    if not literal:
        return None
    try:
        value = _json(literal) if literal == pattern else _json(literal)[:-1]
        return fold(_json(key) + ":" + value)
    except TypeError:  # a lone surrogate: no stored event holds one (orjson refuses them)
        return None


def label_fts_match(specs: list[dict]) -> str | None:
    """An FTS5 MATCH expression that finds every event matching all of the label `specs` (each
    key's patterns an any-of, keys and specs ANDed), or None when it would find more than
    LABEL_FEW_ROWS events or no key's patterns all imply a term (SQLite; see `fts_match`).

    A key whose patterns do not all imply a term (`label_term`) is left out: its patterns are an
    OR, and one that implies nothing would let events without any of the terms match. A term is
    looked up by its value's rarest trigrams (`_label_trigrams`); the key's are in every event
    that has the key. The number of events found is counted (up to LABEL_FEW_ROWS + 1) and
    remembered PROBE_TTL seconds, as the trigrams are."""
    parts = []
    for spec in specs:
        for key, patterns in spec.items():
            terms = [
                label_term(key, p) for p in ([patterns] if isinstance(patterns, str) else patterns)
            ]
            if not terms or len(terms) > LABEL_TERMS or not all(terms):
                continue
            # From the `:` after the key on (`:"value`).
            lookups = [_label_trigrams(t[len(fold(_json(key))) :]) for t in terms]
            if all(lookups):
                parts.append(" OR ".join(f"({_and(grams)})" for grams in lookups))
    if not parts:
        return None
    match = " AND ".join(f"({p})" for p in dict.fromkeys(parts))
    rows = _remembered("rows " + match, lambda: _count(match, LABEL_FEW_ROWS + 1))
    return match if rows <= LABEL_FEW_ROWS else None


def label_search_q(specs: list[dict], *, contained: dict | None = None) -> Q | None:
    """PostgreSQL: None when no key of the label `specs` is rare: whose patterns all imply a
    term (`label_term`) held by at most LABEL_FEW_HITS of the newest LABEL_SAMPLE events; else
    the rare keys' terms as conditions on `search` that its trigram index serves, `strpos`
    confirming each term, except the exact values of `contained` (the resource's labels), which
    its GIN index on `resource` serves by containment (an empty Q), and its name's globs, which
    the name's own index serves (`named`, `filter_sql.name_q`).

    The index is asked for the value's part of a term (`:"nonexistent`: the key's words are in
    every event that has the key), or for its numbered part (`_numbered_part`: ` 4242` of
    `:"invoice 4242`) when the sample finds that part nearly as rare as the term: pg_trgm keeps
    words, not their order, so for ` 42` of `:"invoice 42` (a word starting `42`) the index
    finds 60k events at 1M, each read and tested (415 ms), and for the whole value (`invoice`
    and such a word) 10k (53 ms). The sample is remembered PROBE_TTL seconds."""
    keys, named_patterns = [], {}
    for spec in specs:
        for key, patterns in spec.items():
            patterns = [patterns] if isinstance(patterns, str) else patterns
            terms = [label_term(key, p) for p in patterns]
            if terms and len(terms) <= LABEL_TERMS and all(terms):
                served = spec is contained and all(containable(key, p) for p in patterns)
                if spec is contained and not served and named(key):
                    served = "name"
                    named_patterns[tuple(dict.fromkeys(terms))] = patterns
                keys.append((tuple(dict.fromkeys(terms)), len(fold(_json(key))), served))
    keys = list(dict.fromkeys(keys))
    if not keys:
        return None
    # Each key's terms together, then each term's value and numbered part alone.
    groups = [k[0] for k in keys]
    for terms, at, _ in keys:
        for term in terms:
            groups += [(term,), (_numbered_part(term[at:]),)]
    groups = list(dict.fromkeys(groups))
    sampled = _remembered("sample " + repr(groups), lambda: _sample_hits(groups))[0]
    hits = dict(zip(groups, sampled, strict=True))
    rare = [k for k in keys if hits[k[0]] <= LABEL_FEW_HITS]
    if not rare:
        return None
    q = Q()
    for terms, at, served in rare:
        if served == "name":
            q &= name_q(named_patterns[terms])
            continue
        if served:
            continue
        either = Q()
        for term in terms:
            value, part = term[at:], _numbered_part(term[at:])
            if part != value and hits[(part,)] <= 2 * hits[(term,)] + 2:
                value = part
            either |= Q(search__contains=value) & Q(GreaterThan(StrIndex("search", Value(term)), 0))
        q &= either
    return q


def named(key: str) -> bool:
    """Whether PostgreSQL's resource-name index (migration 0016) serves the resource's patterns of
    `key` that each imply a term (`label_term`): globs with a literal prefix, which its planner
    reads as that prefix's range of the index, beside exact values (`filter_sql.name_q`)."""
    return key == RESOURCE_NAME and connection.vendor == "postgresql"


@dataclass(frozen=True)
class Sample:
    """What the newest LABEL_SAMPLE events said of a query's terms (`rare_text`): how many of
    them were read (fewer in a small log), and how many held the terms (the fewest, of the
    groups asked)."""

    events: int
    hits: int

    def newest_needed(self, limit: int) -> int:
        """How many of the newest events hold REACH_MARGIN pages of `limit` matches at the
        sample's share (as if it held one match when it held none): where a read newest first
        may begin (`rollups.reach`, `row_pages.day_slices`)."""
        return round(REACH_MARGIN * limit * self.events / max(self.hits, 1))


def rare_text(query: str) -> Sample | None:
    """PostgreSQL: when at most LABEL_FEW_HITS of the newest LABEL_SAMPLE events match the
    query's any-of terms together, or one of its required terms (a bound on its matches there),
    what they said (else None): a walk of time would find too few for a page, and the trigram
    index is read at once (`page_plans.newest`), from where the sample's share says a page's
    matches begin (`Sample.newest_needed`). Remembered PROBE_TTL seconds."""
    include, _, required = parse_text_query(query)
    # Only terms the index serves: a shorter one would be read from every day partition.
    groups = [tuple(include)] if include and all(map(_indexable, include)) else []
    groups += [(t,) for t in required if _indexable(t)]
    if not groups:
        return None
    hits, events = _remembered("sample " + repr(groups), lambda: _sample_hits(groups))
    return Sample(events, min(hits)) if min(hits) <= LABEL_FEW_HITS else None


def _sample_hits(groups: list[tuple[str, ...]]) -> tuple[list[int], int]:
    """How many of the newest LABEL_SAMPLE events hold any of each group's terms, and how many
    were read (PostgreSQL)."""
    counts, params = [], []
    for terms in groups:
        either = " OR ".join("strpos(newest.search, %s) > 0" for _ in terms)
        counts.append(f"count(*) FILTER (WHERE {either})")
        params += terms
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(counts)}, count(*) FROM (SELECT search FROM events_event "
            "ORDER BY occurred DESC LIMIT %s) newest",
            [*params, LABEL_SAMPLE],
        )
        *hits, events = cursor.fetchone()
        return hits, events


def _label_trigrams(part: str) -> list[str] | None:
    """Up to LABEL_GRAMS trigrams of `part` each in fewer than FEW_ROWS events, the rarest of up
    to LABEL_PROBES (likelier rare first, as `_trigram_rows` orders them; [one] in no event),
    or None."""

    def probe() -> list[str] | None:
        grams = list(dict.fromkeys(part[i : i + INDEXED_TERM] for i in range(len(part) - 2)))
        grams.sort(key=lambda g: -sum(c not in _COMMON for c in g))
        counted = []
        for gram in grams[:LABEL_PROBES]:
            rows = _count(_and([gram]), FEW_ROWS)
            if rows == 0:  # no event has it: nor the term
                return [gram]
            if rows < FEW_ROWS:
                counted.append((rows, gram))
                if len(counted) == LABEL_GRAMS:
                    break
        return [gram for _, gram in sorted(counted)] or None

    return _remembered("grams " + part, probe)


def _remembered(key: str, make):
    now = time.monotonic()
    if (known := _label_probed.get(key)) and now - known[0] < PROBE_TTL:
        return known[1]
    if len(_label_probed) > 1000:
        _label_probed.clear()
    value = make()
    _label_probed[key] = (now, value)
    return value


def _count(match: str, most: int) -> int:
    """The events an FTS5 MATCH expression finds, counted up to `most`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} "
            f"MATCH %s LIMIT {int(most)})",
            [match],
        )
        return cursor.fetchone()[0]


class FtsRows(Func):
    """`<events_event>.rowid IN (the rows of the FTS5 table matching an expression)`."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, match: str):
        super().__init__(F("search"))
        self.match = match

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        # The column of the events table as this query names it ("events_event" or an alias).
        rowid = column.rsplit(".", 1)[0] + ".rowid" if "." in column else "rowid"
        sql = f"{rowid} IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)"
        return sql, [*params, self.match]


def _contains(term: str, use_index: bool) -> Q:
    # LIKE '%term%' is what pg_trgm's GIN index serves; a term under 3 characters has no trigram
    # and would read the whole index, so it (like SQLite, and a walk) uses instr / strpos, which
    # no index serves: the same substring test, case-sensitive (SQLite's LIKE folds ASCII).
    if use_index and connection.vendor == "postgresql" and len(term) >= INDEXED_TERM:
        if (part := trigram_part(term)) == term:
            return Q(search__contains=term)
        # The index finds the events holding the part; strpos keeps those holding the term.
        return Q(search__contains=part) & Q(GreaterThan(StrIndex("search", Value(term)), 0))
    return Q(GreaterThan(StrIndex("search", Value(term)), 0))


# PostgreSQL asks its index for a term's numbered part when the part is in at most PART_SHARE of
# the newest PART_SAMPLE events (`trigram_part`).
PART_SAMPLE = 1000
PART_SHARE = 0.05
_parts: dict[str, tuple[float, bool]] = {}
# A word as pg_trgm reads one (letters and digits), and one with two digits or more.
_WORD = re.compile(r"[^\W_]+")
_NUMBERED = re.compile(r"\d.*\d")
# A first numbered word this long is asked for without the character before it (`_numbered_part`).
NUMBERED_WORD = 4


def trigram_part(term: str) -> str:
    """The part of `term` that PostgreSQL's trigram index is asked for (PostgreSQL).

    pg_trgm makes trigrams of a term's words (letters and digits) and intersects the lists of
    events of all of them; the lists of the words every event holds (JSON keys, `acme`,
    `customer`, `order`) are long: `LIKE '%"acme.order.4242"%'` read ~530 index pages a day
    partition for its 5 candidates (~15 ms each, ~90 ms at 1M). The words with two digits or
    more (ids, numbers) are rarer: the part from the first to the last of them, with the
    character on either side (a word's edge is a trigram too: `.42"` finds the word `42`), read
    7 pages a partition (`.4242"`: 10 ms for the 7 days). Each candidate is then read from the
    table (~5 µs), so a part in more than PART_SHARE of the newest PART_SAMPLE events (a year,
    a number of every event) is not used: the whole term is, as when it has no such word or is
    all that part. The sample's answer is remembered PROBE_TTL seconds.
    """
    if (part := _numbered_part(term)) == term:
        return term
    now = time.monotonic()
    if (known := _parts.get(part)) and now - known[0] < PROBE_TTL:
        return part if known[1] else term
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT search FROM events_event ORDER BY occurred DESC "
            "LIMIT %s) newest WHERE strpos(newest.search, %s) > 0",
            [PART_SAMPLE, part],
        )
        rare = cursor.fetchone()[0] <= PART_SAMPLE * PART_SHARE
    if len(_parts) > 1000:
        _parts.clear()
    _parts[part] = (now, rare)
    return part if rare else term


def _numbered_part(term: str) -> str:
    """The part of `term` from its first word with two digits or more to its last, with the
    character on either side (`trigram_part`), or `term` when it has none or the part is too
    short for a trigram.

    Not the character before a first word of NUMBERED_WORD characters or more when a character
    follows the last: a known word start adds the trigrams `  4` and ` 42` of `.4242"`, held by
    every word starting with 4 or 42, whose long lists pg_trgm reads and intersects; the words'
    own trigrams and the known end (`424`, `242`, `42 `) are rarer and enough (10M events, a
    day partition, warm: 8.7 → 4.6 ms, 13 → 208 candidates). Without either edge (` 4242` of
    `:"invoice 4242`, a glob's prefix) a word's inner trigrams alone are too common: 12k
    candidates in 7 days at 10M."""
    numbered = [m for m in _WORD.finditer(term) if _NUMBERED.search(m.group())]
    if not numbered:
        return term
    first, last = numbered[0], numbered[-1]
    start = max(0, first.start() - 1)
    if len(first.group()) >= NUMBERED_WORD and last.end() < len(term):
        start = first.start()
    part = term[start : last.end() + 1]
    return term if len(part) < INDEXED_TERM else part
