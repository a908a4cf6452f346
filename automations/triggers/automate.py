"""What "Automate" offers: the scopes an event's automation can cover, and starting templates.

Prefect's "Automate" pins the event's own resource; for a run that is a resource that has
already finished, so the automation can never fire again. Here a run's event offers "this run
only", "any run of flow X" and "any run of deployment Y" (the run's kind by id prefix plus the
related flow or deployment), and the default is one that can fire again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.schema import Event

RUN_KINDS = {"prefect.flow-run": "run", "prefect.task-run": "task run"}
# Related resources that outlive a run, in the order offered (the first present is the default).
STABLE_ROLES = ("flow", "deployment", "work-pool", "work-queue")


@dataclass
class Scope:
    """One choice of which resources the automation covers."""

    key: str
    label: str  # plain words: "any run of flow “etl”"
    trigger: dict[str, Any]
    fires_again: bool


def _name(resource: dict[str, str]) -> str:
    return resource.get("prefect.resource.name") or resource["prefect.resource.id"]


def _trigger(event: Event, match: dict, match_related: dict, for_each: list[str]) -> dict:
    return {
        "type": "event",
        "posture": "Reactive",
        "match": match,
        "match_related": match_related,
        "after": [],
        "expect": [event.event],
        "for_each": for_each,
        "threshold": 1,
        "within": 0,
    }


def scopes(event: Event) -> list[Scope]:
    """The scopes offered for an automation built from this event, the default first."""
    resource_id = event.resource_id
    kind_prefix = resource_id.rsplit(".", 1)[0] if resource_id.count(".") >= 2 else ""
    run = RUN_KINDS.get(kind_prefix)
    this_name = _name(event.resource)
    this_only = Scope(
        "this",
        f"this {run} only ({this_name}); it has ended, so this can hardly fire again"
        if run
        else f"this resource only ({this_name})",
        _trigger(event, {"prefect.resource.id": resource_id}, {}, []),
        fires_again=not run,
    )
    wider: list[Scope] = []
    seen: set[str] = set()
    for role in STABLE_ROLES:
        for related in event.related:
            if related.get("prefect.resource.role") != role or role in seen:
                continue
            seen.add(role)
            what = run or kind_prefix.rsplit(".", 1)[-1].replace("-", " ") or "resource"
            wider.append(
                Scope(
                    role,
                    f"any {what} of {role.replace('-', ' ')} “{_name(related)}”",
                    _trigger(
                        event,
                        {"prefect.resource.id": f"{kind_prefix}.*"} if kind_prefix else {},
                        {
                            "prefect.resource.role": role,
                            "prefect.resource.id": related["prefect.resource.id"],
                        },
                        ["prefect.resource.id"],
                    ),
                    fires_again=True,
                )
            )
    if run:
        return [*wider, this_only]
    return [this_only, *wider]


def starters() -> dict[str, tuple[str, dict[str, Any]]]:
    """Starting templates: key → (plain words, trigger)."""
    return {
        "fails": (
            "a flow run fails",
            {
                "type": "event",
                "posture": "Reactive",
                "match": {"prefect.resource.id": "prefect.flow-run.*"},
                "expect": ["prefect.flow-run.Failed"],
                "for_each": ["prefect.resource.id"],
                "threshold": 1,
                "within": 0,
            },
        ),
        "heartbeat": (
            "a worker stops reporting (heartbeat missing for 10 minutes)",
            {
                "type": "event",
                "posture": "Proactive",
                "match": {"prefect.resource.id": "prefect.worker.*"},
                "after": ["prefect.worker.heartbeat"],
                "expect": ["prefect.worker.heartbeat"],
                "for_each": ["prefect.resource.id"],
                "threshold": 1,
                "within": 600,
            },
        ),
        "failures": (
            "3 failures within 10 minutes for each deployment",
            {
                "type": "event",
                "posture": "Reactive",
                "match": {"prefect.resource.id": "prefect.flow-run.*"},
                "match_related": {"prefect.resource.role": "deployment"},
                "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
                "for_each": ["related:deployment:prefect.resource.id"],
                "threshold": 3,
                "within": 600,
            },
        ),
        "sequence": (
            "A then B: a deployment is paused, then one of its runs is scheduled",
            {
                "type": "sequence",
                "within": 3600,
                "triggers": [
                    {
                        "type": "event",
                        "posture": "Reactive",
                        "expect": ["prefect.deployment.paused"],
                    },
                    {
                        "type": "event",
                        "posture": "Reactive",
                        "expect": ["prefect.flow-run.Scheduled"],
                    },
                ],
            },
        ),
    }
