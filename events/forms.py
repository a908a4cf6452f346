"""The feed's query-string filters: a django-filter FilterSet that builds the one `EventFilter`.

The parameters are SPEC §4's: `range` or `since`/`until`, `event`, `exclude`, `resource`, `label`,
`related`, `role`, `q`. The FilterSet only validates and translates them; the API's filter model
(`events.filters.EventFilter`) does all the matching, in SQL for the page and in memory for the
live socket, so the page and its live rows can never disagree.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import django_filters
from django import forms
from django.utils import timezone

from events.audit import AUDIT_EVENTS
from events.filters import MAX_TEXT_QUERY, EventFilter
from events.models import Event
from events.schema import RESOURCE_ID

RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
RANGE_LABELS = {
    "15m": "Last 15 minutes",
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
}
DEFAULT_RANGE = "24h"
# Prefect's UI hides this high-volume event unless it is picked (reference §7.2).
# High-volume log lines (as in Prefect's UI) and the audit trail (it has its own page, /audit/)
# stay out of the feed unless a picked name covers them.
HIDDEN_BY_DEFAULT = ("prefect.log.write", *sorted(AUDIT_EVENTS))
MAX_VALUES = 50  # per repeatable parameter: enough for any real view, bounded for the SQL
MAX_VALUE_LENGTH = 1024
ROLE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$")
LABEL_KEY_RE = re.compile(r"^[^\s=]{1,200}$")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class MultiValueField(forms.Field):
    """A repeatable query parameter (`?event=a&event=b`) as a list of non-empty strings."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        values = [str(v).strip() for v in value]
        return [v for v in values if v]

    def validate(self, value: list[str]) -> None:
        if len(value) > MAX_VALUES:
            raise forms.ValidationError(f"At most {MAX_VALUES} values are allowed.")
        for v in value:
            if len(v) > MAX_VALUE_LENGTH:
                raise forms.ValidationError(
                    f"A value is {len(v)} characters long; at most {MAX_VALUE_LENGTH} are allowed."
                )


class NamePatternField(MultiValueField):
    """Names or prefixes ending in `.*` (event names, resource ids)."""

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        for v in value:
            body = v[:-1] if v.endswith("*") else v
            if "*" in body:
                raise forms.ValidationError(
                    f"“{v}”: only a trailing “*” (a prefix such as “acme.order.*”) is supported."
                )


class LabelField(MultiValueField):
    def validate(self, value: list[str]) -> None:
        super().validate(value)
        for v in value:
            key, sep, pattern = v.partition("=")
            if not sep or not LABEL_KEY_RE.match(key.strip()) or not pattern.strip():
                raise forms.ValidationError(
                    f"“{v}” is not a label filter; write key=pattern, e.g. env=prod or "
                    "region=eu-* or tier=!free."
                )


class RoleField(MultiValueField):
    def validate(self, value: list[str]) -> None:
        super().validate(value)
        for v in value:
            if not ROLE_RE.match(v):
                raise forms.ValidationError(
                    f"“{v}” is not a role; roles are words such as flow, deployment or tag."
                )


class _ListFilter(django_filters.Filter):
    """A parameter that only feeds `FeedFilterSet.event_filter()`; it filters nothing itself."""

    def filter(self, qs, value):
        return qs


class _NamesFilter(_ListFilter):
    field_class = NamePatternField


class _LabelsFilter(_ListFilter):
    field_class = LabelField


class _IdsFilter(_ListFilter):
    field_class = MultiValueField


class _RolesFilter(_ListFilter):
    field_class = RoleField


class _Noop:
    def filter(self, qs, value):
        return qs


class _RangeFilter(_Noop, django_filters.ChoiceFilter):
    pass


class _DateTimeFilter(_Noop, django_filters.IsoDateTimeFilter):
    pass


class _TextFilter(_Noop, django_filters.CharFilter):
    pass


class FeedForm(forms.Form):
    def clean(self) -> dict:
        data = super().clean()
        for name in ("since", "until"):
            value = data.get(name)
            if value is not None and not (EARLIEST <= value <= LATEST):
                self.add_error(name, "Pick a date between 1970 and 2200.")
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "“until” must be after “since”.")
        return data


class FeedFilterSet(django_filters.FilterSet):
    range = _RangeFilter(choices=list(RANGE_LABELS.items()), empty_label=None)
    since = _DateTimeFilter()
    until = _DateTimeFilter()
    event = _NamesFilter()
    exclude = _NamesFilter()
    resource = _NamesFilter()
    label = _LabelsFilter()
    related = _IdsFilter()
    role = _RolesFilter()
    q = _TextFilter(max_length=MAX_TEXT_QUERY)

    class Meta:
        model = Event
        fields: list[str] = []
        form = FeedForm

    def __init__(
        self, data=None, *args, now: datetime | None = None, scope: str | None = None, **kwargs
    ):
        super().__init__(data if data is not None else {}, *args, **kwargs)
        self.now = now or timezone.now()
        # "audit": the same feed, scoped to the audit trail (the /audit/ page).
        self.scope = "audit" if scope == "audit" else None

    # --- the one filter model -----------------------------------------------------------------

    @property
    def is_custom(self) -> bool:
        """A `since`/`until` window; a preset `range` wins when both are given (a form that
        switched back to a preset still carries the old custom inputs)."""
        data = self.form.cleaned_data
        return not data.get("range") and bool(data.get("since") or data.get("until"))

    @property
    def is_relative(self) -> bool:
        """True when the window ends at "now" (a preset range, or `since` without `until`)."""
        return not (self.is_custom and self.form.cleaned_data.get("until"))

    def bounds(self) -> tuple[datetime, datetime]:
        data = self.form.cleaned_data
        if not self.is_custom:
            return self.now - RANGES[data.get("range") or DEFAULT_RANGE], self.now
        until = data.get("until") or self.now
        since = data.get("since") or until - RANGES[DEFAULT_RANGE]
        return since.astimezone(UTC), until.astimezone(UTC)

    def event_filter(self, *, live: bool = False) -> EventFilter:
        """The `EventFilter` for these parameters. Call `is_valid()` first.

        With `live`, a window that ends at "now" stays open, so events arriving after the page
        was drawn still match on the socket.
        """
        data = self.form.cleaned_data
        since, until = self.bounds()
        if live and self.is_relative:
            until = LATEST
        spec: dict[str, Any] = {"occurred": {"since": since, "until": until}, "order": "DESC"}

        picked = data.get("event") or []
        names, prefixes = _split_patterns(picked)
        if names and prefixes:
            # EventNameFilter ANDs `name` with `prefix`; a picker means "any of these", so a
            # name outside every chosen prefix is matched as a prefix of itself.
            names = [n for n in names if not any(n.startswith(p) for p in prefixes)]
            prefixes, names = prefixes + names, []
        event: dict[str, list[str]] = {}
        if self.scope == "audit":
            # Picks narrow the audit names (as prefixes, since `name` holds the audit list).
            prefixes, names = prefixes + names, sorted(AUDIT_EVENTS)
        if names:
            event["name"] = names
        if prefixes:
            event["prefix"] = prefixes
        ex_names, ex_prefixes = _split_patterns(data.get("exclude") or [])
        if self.scope != "audit":
            ex_names += [
                hidden
                for hidden in HIDDEN_BY_DEFAULT
                if not any(_covers(p, hidden) for p in picked)
            ]
        if ex_names:
            event["exclude_name"] = ex_names
        if ex_prefixes:
            event["exclude_prefix"] = ex_prefixes
        if event:
            spec["event"] = event

        resource: dict[str, Any] = {}
        ids, id_prefixes = _split_patterns(data.get("resource") or [])
        if ids and id_prefixes:
            # ResourceFilter ANDs `id` with `id_prefix`; "any of these" is one glob list instead.
            resource["labels"] = {
                RESOURCE_ID: [_glob_escape(i) for i in ids]
                + [_glob_escape(p) + "*" for p in id_prefixes]
            }
        elif ids:
            resource["id"] = ids
        elif id_prefixes:
            resource["id_prefix"] = id_prefixes
        labels: dict[str, list[str]] = {}
        for item in data.get("label") or []:
            key, _, pattern = item.partition("=")
            labels.setdefault(key.strip(), []).append(pattern.strip())
        if labels:
            resource.setdefault("labels", {}).update(labels)
        if resource:
            spec["resource"] = resource

        related: dict[str, list[str]] = {}
        if data.get("related"):
            related["id"] = data["related"]
        if data.get("role"):
            related["role"] = data["role"]
        if related:
            spec["related"] = related

        if (data.get("q") or "").strip():
            spec["text"] = {"query": data["q"]}
        return EventFilter.model_validate(spec)

    def range_filter(self) -> EventFilter:
        """Only the time window: what the event-name picker counts over."""
        since, until = self.bounds()
        return EventFilter.model_validate({"occurred": {"since": since, "until": until}})

    def filter_queryset(self, queryset):
        return self.event_filter().apply(queryset)

    # --- for the page ---------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether anything narrows the feed beyond the default time range."""
        data = self.form.cleaned_data
        return any(
            data.get(name) for name in ("event", "exclude", "resource", "label", "related", "role")
        ) or bool((data.get("q") or "").strip())

    def values(self, name: str) -> list[str]:
        return list(self.form.cleaned_data.get(name) or [])


def _split_patterns(values: list[str]) -> tuple[list[str], list[str]]:
    """Exact values and prefixes (`acme.order.*` → `acme.order.`)."""
    exact, prefixes = [], []
    for v in values:
        if v.endswith("*"):
            prefixes.append(v[:-1])
        else:
            exact.append(v)
    return exact, prefixes


def _covers(pattern: str, name: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == name


def _glob_escape(value: str) -> str:
    """A literal inside a label glob (the class `[x]` matches x alone, in SQL and in memory)."""
    out = re.sub(r"([*?\[])", r"[\1]", value)
    return "[!]" + out[1:] if out.startswith("!") else out
