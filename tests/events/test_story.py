"""The detail page's words: a title that says what happened to what, kinds of resources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.models import Event
from events.story import display_name, event_kind, kind_of, title


def stored(name: str, resource: dict) -> Event:
    now = datetime.now(UTC)
    return Event(
        occurred=now,
        received=now,
        event=name,
        resource_id=resource["prefect.resource.id"],
        resource=resource,
    )


@pytest.mark.parametrize(
    ("name", "resource", "expected"),
    [
        (
            "prefect.flow-run.Failed",
            {"prefect.resource.id": "prefect.flow-run.1", "prefect.resource.name": "golden-gecko"},
            "Flow run golden-gecko failed",
        ),
        (
            "prefect.task-run.TimedOut",
            {"prefect.resource.id": "prefect.task-run.1", "prefect.resource.name": "extract"},
            "Task run extract timed out",
        ),
        (
            "acme.order.created",
            {"prefect.resource.id": "acme.order.31", "prefect.resource.name": "Order 31"},
            "Order 31 created",
        ),
        (
            "prefect-cloud.user.logged-in",
            {"prefect.resource.id": "prefect-cloud.user.7", "prefect.resource.name": "pat"},
            "User pat logged in",
        ),
        ("deploy", {"prefect.resource.id": "svc.api"}, "svc.api deploy"),
    ],
)
def test_the_title_names_the_resource_and_what_happened_to_it(name, resource, expected):
    assert title(stored(name, resource)) == expected


def test_kinds_come_from_ids_and_names():
    assert kind_of("prefect.flow-run.0f9a") == "flow run"
    assert kind_of("acme.order.31") == "order"
    assert kind_of("hello") == ""
    assert event_kind("prefect.task-run.Completed") == "task run"
    assert event_kind("deploy") == ""


def test_a_tag_reads_as_its_tag():
    tag = {"prefect.resource.id": "prefect.tag.prod", "prefect.resource.role": "tag"}

    assert display_name(tag) == "prod"
    assert display_name({"prefect.resource.id": "x", "prefect.resource.name": "X"}) == "X"
