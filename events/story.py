"""The detail page's story of one event: a title that says what happened to what, the whole
`follows` chain before and after it, the other events of its run and the events of related runs
(a flow run's task runs)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from events import page_queries, schema
from events.models import Event

CHAIN_LIMIT = 50
RUN_LIMIT = 100
RELATED_RUNS_LIMIT = 200
_SEPARATORS = re.compile(r"[-_]+")


def title(event: Event) -> str:
    """ "Flow run golden-gecko failed", "Order 31 created": the resource, then the last word.

    The event name's second-to-last segment says what kind of thing the resource is
    (`prefect.flow-run.Failed` → "flow run"); it is left out when the name already says it
    ("Order 31" for `acme.order.created`).
    """
    verb = _words(event.event.rpartition(".")[2]).lower()
    kind = event_kind(event.event)
    name = schema.resource_name(event.resource)
    if not name or name == event.resource_id:
        name = event.resource_id
    if kind and not name.lower().startswith(kind):
        subject = f"{kind[:1].upper()}{kind[1:]} {name}"
    else:
        subject = name
    return f"{subject} {verb}".strip()


def _words(segment: str) -> str:
    # `TimedOut` → "timed out", `flow-run` → "flow run"
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", segment)
    return _SEPARATORS.sub(" ", spaced).strip()


@dataclass
class RelatedRun:
    """The events of one resource that names this event's resource as related (a task run)."""

    resource_id: str
    name: str
    role: str
    events: list[Event] = field(default_factory=list)


@dataclass
class Step:
    """One line of the story's timeline: an event, and how it relates to the one on the page."""

    event: Event
    note: str  # "this event", "before in chain", "after in chain", "" (same resource)
    depth: int = 0


@dataclass
class Story:
    before: list[Event]  # oldest first, ending with the event this one follows
    after: list[tuple[Event, int]]  # (event, depth) in order of occurrence
    run: list[Event]  # this resource's events around this one, oldest first
    related_runs: list[RelatedRun]

    def timeline(self, of: Event) -> list[Step]:
        """The `follows` chain both ways and the resource's other events, as one list in order
        of occurrence (each event once)."""
        steps: dict[object, Step] = {e.id: Step(e, "") for e in self.run}
        for e in self.before:
            steps[e.id] = Step(e, "before in chain")
        for e, depth in self.after:
            steps[e.id] = Step(e, "after in chain", depth)
        steps[of.id] = Step(of, "this event")
        return sorted(steps.values(), key=lambda s: (s.event.occurred, s.event.id.hex))


def story(event: Event) -> Story:
    runs: dict[str, RelatedRun] = {}
    for seen in page_queries.naming_as_related(event, limit=RELATED_RUNS_LIMIT):
        other = seen.event
        run = runs.get(other.resource_id)
        if run is None:
            run = runs[other.resource_id] = RelatedRun(
                resource_id=other.resource_id,
                name=schema.resource_name(other.resource),
                role=seen.role,
            )
        run.events.append(other)
    return Story(
        before=page_queries.chain_before(event, limit=CHAIN_LIMIT),
        after=page_queries.chain_after(event, limit=CHAIN_LIMIT),
        run=page_queries.run_events(event, limit=RUN_LIMIT),
        related_runs=list(runs.values()),
    )


def kind_of(resource_id: str) -> str:
    """What kind of thing an id names, by Prefect's convention `<namespace>.<kind>.<id>`:
    `prefect.flow-run.1b2c…` → "flow run", `acme.order.31` → "order"; "" when it does not say."""
    parts = resource_id.split(".")
    return _words(parts[-2]).lower() if len(parts) >= 3 else ""


def event_kind(name: str) -> str:
    """What an event name says its resource is: `prefect.task-run.Completed` → "task run"."""
    parts = name.split(".")
    return _words(parts[-2]).lower() if len(parts) >= 2 else ""


def display_name(labels: dict) -> str:
    """The name people read for a resource: its name label, a tag's tag, else its id."""
    name = schema.resource_name(labels)
    # Prefect's tags are resources named `prefect.tag.<tag>`; the tag itself is what people read.
    if labels.get(schema.RESOURCE_ROLE) == "tag" and name.startswith("prefect.tag."):
        return name[len("prefect.tag.") :]
    return name
