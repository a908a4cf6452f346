"""The one filter model: Prefect's `EventFilter`, with a SQL and an in-memory evaluator.

`EventFilter.apply(queryset)` narrows a queryset of stored events; `EventFilter.matches(event)`
decides for one `schema.Event` (live streams, triggers). A hypothesis test keeps them in step.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from django.db import connection
from django.db.models import (
    DateTimeField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextField,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import timezone
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from events.filter_sql import any_prefix_q, labels_q
from events.labels import as_list, label_matches, labels_match
from events.models import EventResource
from events.schema import RESOURCE_ID, RESOURCE_ROLE, Event
from events.text_search import indexed_text, search_text, text_matches, text_q

MAX_TEXT_QUERY = 200


def _none_to_default(value: Any) -> Any:
    return {} if value is None else value


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _default_since() -> datetime:
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=180)


class OccurredFilter(_Filter):
    """Inclusive bounds; by default the last 180 days up to now (future events excluded)."""

    since: datetime = Field(default_factory=_default_since)
    until: datetime = Field(default_factory=timezone.now)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _null_is_default(cls, value, info):
        if value is None:
            return _default_since() if info.field_name == "since" else timezone.now()
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Every list and string of a filter is bounded (a 422 names the field past its bound): 200k names
# or 10k label keys made expression trees SQLite refuses after a minute, and slow queries anywhere.
MAX_FILTER_VALUES = 200
MAX_FILTER_LABELS = 50
MAX_FILTER_RESOURCES = 20
MAX_FILTER_STRING = 4096
Text = Annotated[str, StringConstraints(max_length=MAX_FILTER_STRING)]
Values = Annotated[list[Text], Field(max_length=MAX_FILTER_VALUES)]
BoundedPatterns = Text | Annotated[list[Text], Field(max_length=MAX_FILTER_VALUES)]
Labels = Annotated[dict[Text, BoundedPatterns], Field(max_length=MAX_FILTER_LABELS)]


class EventNameFilter(_Filter):
    prefix: Values | None = None
    exclude_prefix: Values | None = None
    name: Values | None = None
    exclude_name: Values | None = None


class ResourceFilter(_Filter):
    id: Values | None = None
    id_prefix: Values | None = None
    labels: Labels | None = None
    distinct: bool = False


class RelatedFilter(_Filter):
    id: Values | None = None
    role: Values | None = None
    resources_in_roles: (
        Annotated[list[tuple[Text, Text]], Field(max_length=MAX_FILTER_VALUES)] | None
    ) = None
    labels: Labels | None = None

    @property
    def constrains(self) -> bool:
        """A related filter without criteria constrains nothing (not even "has a related")."""
        return bool(self.id or self.role or self.resources_in_roles or self.labels)


class AnyResourceFilter(_Filter):
    id: Values | None = None
    id_prefix: Values | None = None
    labels: Labels | None = None


class IdFilter(_Filter):
    id: Annotated[list[uuid.UUID], Field(max_length=MAX_FILTER_VALUES)] | None = None


class TextFilter(_Filter):
    query: str = Field(default="", max_length=MAX_TEXT_QUERY)


class EventFilter(_Filter):
    occurred: Annotated[OccurredFilter, BeforeValidator(_none_to_default)] = Field(
        default_factory=OccurredFilter
    )
    event: EventNameFilter | None = None
    resource: ResourceFilter | None = None
    related: (
        RelatedFilter
        | Annotated[list[RelatedFilter], Field(max_length=MAX_FILTER_RESOURCES)]
        | None
    ) = None
    any_resource: (
        AnyResourceFilter
        | Annotated[list[AnyResourceFilter], Field(max_length=MAX_FILTER_RESOURCES)]
        | None
    ) = None
    id: Annotated[IdFilter, BeforeValidator(_none_to_default)] = Field(default_factory=IdFilter)
    text: TextFilter | None = None
    order: Literal["ASC", "DESC"] = "DESC"

    # --- helpers -------------------------------------------------------------------------------

    @property
    def descending(self) -> bool:
        return self.order == "DESC"

    @property
    def distinct(self) -> bool:
        return bool(self.resource and self.resource.distinct)

    def _related_list(self) -> list[RelatedFilter]:
        if self.related is None:
            return []
        return self.related if isinstance(self.related, list) else [self.related]

    def _any_list(self) -> list[AnyResourceFilter]:
        if self.any_resource is None:
            return []
        return self.any_resource if isinstance(self.any_resource, list) else [self.any_resource]

    def to_json(self) -> dict:
        """JSON with the (possibly defaulted) time bounds made absolute, e.g. for a page token."""
        return self.model_dump(mode="json")

    # --- in memory ------------------------------------------------------------------------------

    def matches(self, event: Event) -> bool:
        """Whether one event satisfies every criterion (`distinct` is a property of a result set)."""
        if not (self.occurred.since <= event.occurred <= self.occurred.until):
            return False
        if self.id.id and event.id not in self.id.id:
            return False
        if not name_matches(self.event, event.event):
            return False
        if self.resource and not _resource_matches(self.resource, event.resource):
            return False
        for related in self._related_list():
            if not related.constrains:
                continue
            candidates = _related_candidates(related, event)
            if not any(_related_resource_matches(related, r) for r in candidates):
                return False
        for spec in self._any_list():
            if not any(_any_resource_matches(spec, r) for r in (event.resource, *event.related)):
                return False
        return not (self.text and not text_matches(self.text.query, search_text(event)))

    def evaluate(self, events: list[Event]) -> list[Event]:
        """The in-memory twin of `apply` + ordering: matching events, ordered, `distinct` applied."""
        found = sorted(
            (e for e in events if self.matches(e)),
            key=lambda e: (e.occurred, e.id.hex),
            reverse=self.descending,
        )
        if self.distinct:
            seen: set[str] = set()
            found = [e for e in found if not (e.resource_id in seen or seen.add(e.resource_id))]
        return found

    # --- SQL ------------------------------------------------------------------------------------

    def apply(
        self,
        queryset: QuerySet,
        *,
        semijoin: Literal["in", "exists"] = "in",
        by_criteria: bool = False,
    ) -> QuerySet:
        """Narrow a queryset of `events.Event` to this filter (unordered; see `ordered`).

        Resource-row criteria are `id IN (rows)` by default, which SQLite answers from the rows'
        indexes first (best when they are few); `semijoin="exists"` writes them as a correlated
        EXISTS instead, which lets a newest-first walk of the occurred index stop at a page
        (best when they are many). PostgreSQL plans both as a semi-join; there the default is
        an EXISTS on the rows of the window correlated by (id, occurred), so that each matching
        row's event is read from its own day's partition (`events.partitions`).

        `by_criteria=True` (with `indexed_criteria()`) keeps SQLite, which has no statistics,
        from choosing the occurred index over the criteria's own: the time bounds are written
        as `+occurred`, which no index serves (no effect on PostgreSQL).
        """
        since, until = self.occurred.since, self.occurred.until
        time_bound = by_criteria and connection.vendor == "sqlite"
        occurred = _no_index("occurred") if time_bound else F("occurred")
        qs = queryset.alias(_occurred=occurred).filter(_occurred__gte=since, _occurred__lte=until)
        if self.id.id:
            qs = qs.filter(id__in=self.id.id)
        if self.event:
            qs = qs.filter(name_q(self.event))
        if self.resource:
            qs = qs.filter(_resource_q(self.resource))
        # Related and any-resource criteria are answered from the resource rows, restricted to
        # the same time window so the (resource_id, occurred) index bounds the lookup.
        rows = EventResource.objects.alias(_occurred=occurred).filter(
            _occurred__gte=since, _occurred__lte=until
        )
        # One event's rows, found by event_id: on SQLite the row criteria are written as
        # `+column` so that it looks the rows up by event_id rather than by, say, role.
        names = {"rid": "resource_id", "role": "role"}
        own_rows = EventResource.objects.filter(event_id=OuterRef("id"))
        if connection.vendor == "postgresql":
            # The rows share their event's `occurred`: saying so lets PostgreSQL look in the one
            # day partition that holds them instead of probing every day's (events.partitions).
            own_rows = own_rows.filter(occurred=OuterRef("occurred"))
        if connection.vendor == "sqlite":
            names = {"rid": "_rid", "role": "_role"}
            own_rows = own_rows.alias(_rid=_no_index("resource_id", TextField()))
            own_rows = own_rows.alias(_role=_no_index("role", TextField()))
        specs = [
            (r, _related_row_q, r.id or r.role or r.resources_in_roles)
            for r in self._related_list()
        ]
        specs += [(a, _any_row_q, a.id or a.id_prefix) for a in self._any_list()]
        for spec, row_q, indexed in specs:
            if (q := row_q(spec)) is None:
                continue
            if semijoin == "exists" or (by_criteria and not indexed):
                qs = qs.filter(Exists(own_rows.filter(row_q(spec, **names))))
            elif connection.vendor == "postgresql":
                # The matching rows' events by (id, occurred), not `id IN (…)`: each is then
                # looked up in its one day's partition, not probed for in every day's.
                match = rows.filter(q, event_id=OuterRef("id"), occurred=OuterRef("occurred"))
                qs = qs.filter(Exists(match))
            else:
                qs = qs.filter(id__in=rows.filter(q).values("event_id"))
        # A walk tests each event's text; otherwise PostgreSQL may read it from its index, and
        # SQLite reads the rows of its FTS5 table when text is the one indexed criterion.
        if self.text:
            fts = by_criteria and semijoin == "in" and not self.indexed_columns()
            if (q := text_q(self.text.query, use_index=semijoin == "in", indexed=fts)) is not None:
                qs = qs.filter(q)
        if self.distinct:
            first = Window(
                RowNumber(),
                partition_by=[F("resource_id")],
                order_by=_order_by(self.descending),
            )
            firsts = qs.alias(_rank=first).filter(_rank=1).values("id")
            qs = queryset.filter(id__in=Subquery(firsts))
        return qs

    def rows_first(self) -> tuple[Q, list[str], EventFilter | None] | None:
        """A related or any-resource criterion a page is read from the rows of: its Q and ids,
        and the rest to check on their events (`row_pages.from_rows`; None: the rows alone)."""
        specs = [
            (r, _related_row_q(r), r.id or [i for i, _ in r.resources_in_roles or []], r.role)
            for r in self._related_list()
            if r.constrains
        ]
        specs += [(a, q, a.id or [], a.id_prefix) for a in self._any_list() if (q := _any_row_q(a))]
        if len(specs) == 1 and not (self.event or self.resource or self.id.id or self.text):
            _, q, ids, indexed = specs[0]
            return (q, list(ids), None) if ids or indexed else None
        for spec, q, ids, _ in specs:
            if ids and not self.distinct:
                rest = {"related": [r for r in self._related_list() if r is not spec] or None}
                rest["any_resource"] = [a for a in self._any_list() if a is not spec] or None
                return q, list(ids), self.model_copy(update=rest)
        return None

    def labels_alone(self) -> Q | None:
        """When this filter is time, order and resource labels alone: those labels as a Q on
        the primary resource rows (`EventResource`, role "", whose `labels` are the event's
        `resource`, as ingest stores them), which a walk may read instead of the events
        (`page_plans.newest`). None otherwise."""
        other = self.event or self.related or self.any_resource or self.id.id or self.text
        r = self.resource
        if other or not r or not r.labels or r.id or r.id_prefix or r.distinct:
            return None
        labels = labels_q(r.labels, json_field="labels", id_field="resource_id", role_field=None)
        return Q(role="") & labels

    def indexed_criteria(self) -> bool:
        """Whether a criterion has an index of its own (names, resource ids and prefixes, related
        ids and roles, event ids, on SQLite text terms of 3 characters or more): the matches can
        be read from it instead of walking time. (Not PostgreSQL's label and trigram indexes:
        its planner estimates a label value's share and chooses; text walks first there.)"""
        return self.indexed_columns() or self._indexed_text()

    def _indexed_text(self) -> bool:
        return bool(self.text) and connection.vendor == "sqlite" and indexed_text(self.text.query)

    def indexed_columns(self) -> bool:
        """`indexed_criteria` but text: a criterion with a B-tree index of its own."""
        names = self.event and (self.event.name or self.event.prefix)
        resource = self.resource and (self.resource.id or self.resource.id_prefix)
        related = any(r.id or r.role or r.resources_in_roles for r in self._related_list())
        anything = any(a.id or a.id_prefix for a in self._any_list())
        return bool(names or resource or related or anything or self.id.id)

    def ordered(self, queryset: QuerySet) -> QuerySet:
        return self.apply(queryset).order_by(*_order_by(self.descending))


def _order_by(descending: bool):
    if descending:
        return [F("occurred").desc(), F("id").desc()]
    return [F("occurred").asc(), F("id").asc()]


def _no_index(column: str, output_field=None) -> Func:
    """`+column`: the same value, but SQLite will not use an index on the column for it."""
    return Func(
        F(column), template="+%(expressions)s", output_field=output_field or DateTimeField()
    )


def name_q(f: EventNameFilter, field: str = "event") -> Q:
    """The event-name criteria on `field` (a column, or an alias of one)."""
    q = Q()
    if f.prefix:
        q &= any_prefix_q(field, f.prefix)
    if f.exclude_prefix:
        q &= ~any_prefix_q(field, f.exclude_prefix)
    if f.name:
        q &= Q(**{f"{field}__in": f.name})
    if f.exclude_name:
        q &= ~Q(**{f"{field}__in": f.exclude_name})
    return q


def name_matches(f: EventNameFilter | None, name: str) -> bool:
    """The name criteria of a filter, in memory (no criteria: every name matches)."""
    if f is None:
        return True
    if f.prefix and not any(name.startswith(p) for p in f.prefix):
        return False
    if f.exclude_prefix and any(name.startswith(p) for p in f.exclude_prefix):
        return False
    if f.name and name not in f.name:
        return False
    return not (f.exclude_name and name in f.exclude_name)


# --- resources -----------------------------------------------------------------------------------


def _resource_q(f: ResourceFilter) -> Q:
    q = Q()
    if f.id:
        q &= Q(resource_id__in=f.id)
    if f.id_prefix:
        q &= any_prefix_q("resource_id", f.id_prefix)
    if f.labels:
        q &= labels_q(f.labels, json_field="resource", id_field="resource_id", role_field=None)
    return q


def _resource_matches(f: ResourceFilter, resource: dict[str, str]) -> bool:
    rid = resource.get(RESOURCE_ID, "")
    if f.id and rid not in f.id:
        return False
    if f.id_prefix and not any(rid.startswith(p) for p in f.id_prefix):
        return False
    return not (f.labels and not labels_match(f.labels, resource))


def _related_row_q(f: RelatedFilter, rid: str = "resource_id", role: str = "role") -> Q | None:
    """Criteria on one resource row (columns `rid` and `role`, or aliases of them); all must
    hold on the same row. None: no constraint."""
    if not f.constrains:
        return None
    q = Q()
    if f.id:
        q &= Q(**{f"{rid}__in": f.id})
    if f.role:
        q &= Q(**{f"{role}__in": f.role})
    else:
        q &= ~Q(**{role: ""})
    if f.resources_in_roles:
        either = Q()
        for resource_id, role_name in f.resources_in_roles:
            either |= Q(**{rid: resource_id, role: role_name})
        q &= either
    if f.labels:
        q &= labels_q(f.labels, json_field="labels", id_field=rid, role_field=role)
    return q


def _related_candidates(f: RelatedFilter, event: Event) -> list[dict[str, str]]:
    # The primary resource takes part only when the filter names roles (role "" is the primary).
    if f.role and "" in f.role:
        return [{**event.resource, RESOURCE_ROLE: ""}, *event.related]
    return event.related


def _related_resource_matches(f: RelatedFilter, resource: dict[str, str]) -> bool:
    rid, role = resource.get(RESOURCE_ID, ""), resource.get(RESOURCE_ROLE, "")
    if f.id and rid not in f.id:
        return False
    if f.role and role not in f.role:
        return False
    if f.resources_in_roles and (rid, role) not in {tuple(p) for p in f.resources_in_roles}:
        return False
    if f.labels:
        for key, patterns in f.labels.items():
            if key == RESOURCE_ROLE:
                if role not in as_list(patterns):
                    return False
            elif not label_matches(patterns, resource.get(key)):
                return False
    return True


def _any_row_q(f: AnyResourceFilter, rid: str = "resource_id", role: str = "role") -> Q | None:
    q = Q()
    if f.id:
        q &= Q(**{f"{rid}__in": f.id})
    if f.id_prefix:
        q &= any_prefix_q(rid, f.id_prefix)
    if f.labels:
        q &= labels_q(f.labels, json_field="labels", id_field=rid, role_field=None)
    return q if (f.id or f.id_prefix or f.labels) else None


def _any_resource_matches(f: AnyResourceFilter, resource: dict[str, str]) -> bool:
    rid = resource.get(RESOURCE_ID, "")
    if f.id and rid not in f.id:
        return False
    if f.id_prefix and not any(rid.startswith(p) for p in f.id_prefix):
        return False
    return not (f.labels and not labels_match(f.labels, resource))


__all__ = [
    "AnyResourceFilter",
    "EventFilter",
    "EventNameFilter",
    "IdFilter",
    "OccurredFilter",
    "RelatedFilter",
    "ResourceFilter",
    "TextFilter",
]
