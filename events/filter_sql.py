"""The filter's SQL building blocks (split from `filters.py` for length): resource labels (globs,
`!` negations, exact values by containment on PostgreSQL) and prefixes, on both databases.

Part of the one filter model: only `events.filters` builds filters from these, except
`startswith_q`, the prefix match the read path's other reads share.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, F, Func, Q
from django.db.models.fields.json import KeyTextTransform, compile_json_path

from events.labels import Patterns, as_list, glob_regex
from events.schema import RESOURCE_ID, RESOURCE_NAME, RESOURCE_ROLE

# --- label globs ---------------------------------------------------------------------------------


class Glob(Func):
    """`lhs GLOB pattern` on SQLite, a regex match with the same semantics elsewhere."""

    output_field = BooleanField()
    conditional = True
    arity = 1

    def __init__(self, expression, pattern: str):
        super().__init__(expression)
        self.pattern = pattern

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} ~ %s)", [*params, glob_regex(self.pattern)]

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} GLOB %s)", [*params, self.pattern]


class NotGlob(Glob):
    """A present value that does not match: `(lhs GLOB pattern) = 0` on SQLite, false for a
    missing label (NULL) with the value extracted once; elsewhere `NOT lhs ~ regex AND lhs IS
    NOT NULL`, as PostgreSQL's plans were made with."""

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        regex = glob_regex(self.pattern)
        return f"(NOT ({sql} ~ %s) AND {sql} IS NOT NULL)", [*params, regex, *params]

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(({sql} GLOB %s) = 0)", [*params, self.pattern]


class LabelText(KeyTextTransform):
    """A label's value as text. On SQLite one `JSON_EXTRACT`: Django's key transform also asks
    `JSON_TYPE` (to tell JSON true, false and null from text), and SQLite 3.40 parses the
    document again for each call; label values are strings (`schema`), so it is not needed."""

    def as_sqlite(self, compiler, connection):
        lhs, params, keys = self.preprocess_lhs(compiler, connection)
        return f"JSON_EXTRACT({lhs}, %s)", (*params, compile_json_path(keys))


class NameText(LabelText):
    """The resource's name as the filter tests it, on PostgreSQL
    `(resource ->> 'prefect.resource.name') || ''`: the same value (NULL for none), which the
    name's B-tree (migration 0016) does not serve. Its planner would read any glob with a
    literal start from that index, and a common one (`Invoice 7*`, 1.9 % of events, beside a
    region) by every match, sorted (10M: 656 ms, where walking time finds the page in 15 ms).
    Only a rare glob's read asks the index, by `name_q` (`text_search.label_search_q`)."""

    def as_postgresql(self, compiler, connection):
        sql, params = super().as_postgresql(compiler, connection)
        return f"({sql} || '')", params


def label_value(key: str, json_field: str, id_field: str):
    if key == RESOURCE_ID:
        return F(id_field)
    if key == RESOURCE_NAME and json_field == "resource":
        return NameText(key, json_field)
    return LabelText(key, json_field)


def name_q(patterns: list[str]) -> Q:
    """The resource's name matching any of `patterns` (exact values and globs with a literal
    start, PostgreSQL), as its indexes serve them: an exact value by containment (the GIN index
    on `resource`, 0011), a glob by its regex on the name itself, which the name's B-tree (0016)
    reads as the range of the literal start. The filter's own test stays (`NameText`)."""
    either = Q()
    for pattern in patterns:
        if containable(RESOURCE_NAME, pattern):
            either |= Q(resource__contains={RESOURCE_NAME: pattern})
        else:
            either |= Q(Glob(LabelText(RESOURCE_NAME, "resource"), pattern))
    return either


def labels_q(
    spec: dict[str, Patterns], *, json_field: str, id_field: str, role_field: str | None
) -> Q:
    q = Q()
    for key, patterns in spec.items():
        patterns = as_list(patterns)
        if not patterns:
            return Q(pk__in=[])  # an empty pattern list matches nothing
        if key == RESOURCE_ROLE and role_field:
            q &= Q(**{f"{role_field}__in": patterns})
            continue
        value = label_value(key, json_field, id_field)
        either = Q()
        for pattern in patterns:
            if json_field == "resource" and containable(key, pattern):
                # `json @> {"key": "value"}`: the same test as `->> = ` (label values are
                # strings), but one that PostgreSQL's statistics estimate (so it walks time for
                # a common value) and the GIN index `event_resource_gin` serves (a rare one).
                either |= Q(**{f"{json_field}__contains": {key: pattern}})
            elif pattern.startswith("!"):
                either |= Q(NotGlob(value, pattern[1:]))  # a missing label never matches
            else:
                either |= Q(Glob(value, pattern))
        q &= either
    return q


def containable(key: str, pattern: str) -> bool:
    """Whether a pattern is one exact value that PostgreSQL can test by containment."""
    return (
        connection.vendor == "postgresql"
        and key != RESOURCE_ID
        and not pattern.startswith("!")
        and not any(c in pattern for c in "*?[")
    )


# --- prefixes ------------------------------------------------------------------------------------


def startswith_q(field: str, prefix: str) -> Q:
    """Case-sensitive prefix match that can use a b-tree index on both databases."""
    if not prefix:
        return Q(**{f"{field}__isnull": False})
    if connection.vendor == "sqlite":
        # SQLite's LIKE ignores case and skips the index; a range on the binary collation does not.
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            upper = prefix[:-1] + chr(last + 1)
            return Q(**{f"{field}__gte": prefix, f"{field}__lt": upper})
    return Q(**{f"{field}__startswith": prefix})


def any_prefix_q(field: str, prefixes: list[str]) -> Q:
    q = Q()
    for prefix in prefixes:
        q |= startswith_q(field, prefix)
    return q
