"""The one severity rule (`events.severity`): labels first, then the name."""

from __future__ import annotations

import pytest

from events.severity import Severity, of_event, of_name, tally


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("prefect.flow-run.Failed", Severity.FAILED),
        ("prefect.flow-run.Crashed", Severity.FAILED),
        ("prefect.task-run.TimedOut", Severity.FAILED),
        ("acme.job.failed", Severity.FAILED),
        ("billing.sync.error", Severity.FAILED),
        ("billing.sync.ERROR", Severity.FAILED),
        ("prefect-cloud.webhook.failed", Severity.FAILED),
        ("eventsite.ingest.rejected", Severity.FAILED),
        ("prefect.flow-run.Completed", Severity.COMPLETED),
        ("prefect.task-run.Cached", Severity.COMPLETED),
        ("deploy.succeeded", Severity.COMPLETED),
        ("prefect.flow-run.Running", Severity.RUNNING),
        ("prefect.flow-run.Retrying", Severity.RUNNING),
        ("prefect.flow-run.Cancelled", Severity.CANCELLED),
        ("prefect.flow-run.Cancelling", Severity.CANCELLED),
        ("prefect.flow-run.Scheduled", Severity.OTHER),
        ("prefect.flow-run.heartbeat", Severity.OTHER),
        ("acme.order.created", Severity.OTHER),
        ("failed.order.created", Severity.OTHER),  # only the last segment counts
        ("failed", Severity.FAILED),
    ],
)
def test_the_name_alone_gives_the_severity(name, expected):
    assert of_name(name) is expected


def test_a_prefect_state_type_label_outranks_the_name():
    # A custom state name: Prefect's own "AwaitingRetry" is SCHEDULED, a custom one may be FAILED.
    resource = {"prefect.resource.id": "prefect.flow-run.1", "prefect.state-type": "FAILED"}

    assert of_event("prefect.flow-run.Unlucky", resource) is Severity.FAILED
    assert (
        of_event("prefect.flow-run.Unlucky", {"prefect.state-type": "crashed"}) is Severity.FAILED
    )
    assert of_event("acme.job.failed", {"prefect.state-type": "COMPLETED"}) is Severity.COMPLETED


def test_an_unknown_state_type_falls_back_to_the_name():
    assert of_event("acme.job.failed", {"prefect.state-type": "WEIRD"}) is Severity.FAILED
    assert of_event("acme.job.failed", {"prefect.state-type": 3}) is Severity.FAILED
    assert of_event("acme.job.failed", None) is Severity.FAILED


def test_counts_by_name_become_counts_by_severity_in_a_fixed_order():
    counts = tally({"a.failed": 2, "b.error": 1, "c.completed": 5, "d.heartbeat": 9})

    assert list(counts) == [
        Severity.FAILED,
        Severity.CANCELLED,
        Severity.RUNNING,
        Severity.COMPLETED,
        Severity.OTHER,
    ]
    assert list(counts.values()) == [3, 0, 0, 5, 9]
