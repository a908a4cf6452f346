"""Every list of a filter is bounded: a 422 names the field, before any query runs."""

from __future__ import annotations

import pytest

from events.filters import MAX_FILTER_LABELS, MAX_FILTER_RESOURCES, MAX_FILTER_VALUES

TOO_MANY = MAX_FILTER_VALUES + 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("filter_", "field"),
    [
        ({"event": {"prefix": [f"p{i}." for i in range(20_000)]}}, "filter.event.prefix"),
        ({"event": {"name": [f"n{i}" for i in range(200_000)]}}, "filter.event.name"),
        ({"event": {"exclude_name": ["n"] * TOO_MANY}}, "filter.event.exclude_name"),
        ({"resource": {"id": ["r"] * TOO_MANY}}, "filter.resource.id"),
        (
            {"resource": {"labels": {f"k{i}": "v" for i in range(10_000)}}},
            "filter.resource.labels",
        ),
        ({"resource": {"labels": {"k": ["v"] * TOO_MANY}}}, "filter.resource.labels.k"),
        ({"related": [{"id": ["r"]}] * (MAX_FILTER_RESOURCES + 1)}, "filter.related"),
        ({"any_resource": {"id_prefix": ["r"] * TOO_MANY}}, "filter.any_resource"),
        ({"id": {"id": ["8a1b3d0e-0f4c-4d35-9a51-6d2f0f1d8b11"] * TOO_MANY}}, "filter.id.id"),
        ({"event": {"name": ["x" * 5000]}}, "filter.event.name.0"),
    ],
)
def test_a_filter_over_a_bound_is_a_422_naming_the_field(api_client, filter_, field):
    for path in ("/api/events/filter", "/api/events/count-by/event"):
        response = api_client.post(path, {"filter": filter_}, format="json")

        assert response.status_code == 422, response.content[:300]
        fields = [e["field"] for e in response.json()["errors"]]
        assert any(f.startswith(field) for f in fields), fields


@pytest.mark.django_db
def test_a_filter_at_its_bounds_is_answered(api_client):
    filter_ = {
        "event": {"prefix": [f"p{i}." for i in range(MAX_FILTER_VALUES)]},
        "resource": {"labels": {f"k{i}": ["a", "b"] for i in range(MAX_FILTER_LABELS)}},
        "related": [{"id": ["r"]}] * MAX_FILTER_RESOURCES,
    }

    response = api_client.post("/api/events/filter", {"filter": filter_}, format="json")

    assert response.status_code == 200
