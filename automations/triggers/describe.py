"""Triggers in words: a one-line summary, the trigger "Automate" builds from an event, and the
clause-by-clause explanation of whether a trigger covers an event."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from automations.triggers.definitions import NEVER_EVALUATED, CompoundTrigger, EventTrigger
from automations.triggers.state import Bucket
from events.labels import label_matches, labels_match
from events.schema import Event


def describe(trigger: Any) -> str:
    """A one-line human summary of a trigger."""
    if isinstance(trigger, EventTrigger):
        names = ", ".join(trigger.expect) or "any event"
        where = ""
        if rid := trigger.match.get("prefect.resource.id"):
            where = f" on {rid if isinstance(rid, str) else ' | '.join(rid)}"
        gate = f" after {', '.join(trigger.after)}" if trigger.after else ""
        window = f" within {trigger.within.total_seconds():g} s" if trigger.within else ""
        each = f" for each {', '.join(sorted(trigger.for_each))}" if trigger.for_each else ""
        if trigger.reactive:
            return f"{names}{where}{gate} ≥ {trigger.threshold}×{window}{each}"
        return f"fewer than {trigger.threshold}× {names}{where}{gate}{window}{each}"
    if isinstance(trigger, CompoundTrigger):
        need = trigger.require if isinstance(trigger.require, str) else f"{trigger.require} of"
        return f"{need} {len(trigger.triggers)} triggers: " + "; ".join(
            describe(t) for t in trigger.triggers
        )
    return "in sequence: " + " → ".join(describe(t) for t in trigger.triggers)


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def _either(values: list[str] | str) -> str:
    values = [values] if isinstance(values, str) else list(values)
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def sentence(trigger: Any, *, top: bool = True) -> str:
    """The trigger in plain words, as the form shows it while it is edited (`top`: the
    automation's own trigger, not a composite's child)."""
    if isinstance(trigger, EventTrigger):
        names = _either(trigger.expect) if trigger.expect else "any event"
        where = ""
        if rid := trigger.match.get("prefect.resource.id"):
            where = f" on {_either(rid)}"
        related = trigger.match_related if isinstance(trigger.match_related, dict) else {}
        if role := related.get("prefect.resource.role"):
            rid = related.get("prefect.resource.id")
            where += f" related as {_either(role)}" + (f" to {_either(rid)}" if rid else "")
        each = (
            f", counted separately for each {', '.join(sorted(trigger.for_each))}"
            if trigger.for_each
            else ""
        )
        times = "once" if trigger.threshold == 1 else f"{trigger.threshold} times"
        window = _duration(trigger.within.total_seconds())
        if trigger.reactive:
            span = f" within {window}" if trigger.within and trigger.threshold > 1 else ""
            gate = f", after {_either(trigger.after)}" if trigger.after else ""
            return f"Fires when {names} happens{where} {times}{span}{gate}{each}."
        fewer = "no" if trigger.threshold == 1 else f"fewer than {trigger.threshold}"
        said = f"Fires when {fewer} {names}{where} arrive within {window}"
        if trigger.after:
            said = f"{said} after each {_either(trigger.after)}{each}."
        elif trigger.for_each:
            said = (
                f"{said}{each}; each one that has sent them and goes silent alerts between "
                f"{window} and {_duration(2 * trigger.within.total_seconds())} after its last "
                f"(set “after” to the same event to alert exactly {window} after it)."
            )
        else:
            said = f"{said}."
        if not top:
            return said
        return (
            f"{said} It notifies once per outage, and resolves (running the actions on "
            f"resolve) when {names} arrives again."
        )
    children = [
        sentence(t, top=False).removeprefix("Fires when ").rstrip(".") for t in trigger.triggers
    ]
    within = (
        f" within {_duration(trigger.within.total_seconds())}"
        if getattr(trigger, "within", None)
        else ""
    )
    if isinstance(trigger, CompoundTrigger):
        need = {"any": "any of", "all": "all of"}.get(str(trigger.require), f"{trigger.require} of")
        return f"Fires when {need} these happen{within}: " + "; ".join(children) + "."
    return f"Fires when these happen in order{within}: " + "; then ".join(children) + "."


def trigger_from_event(event: Event) -> dict[str, Any]:
    """The trigger Prefect's UI builds from an event for "Automate" (reference §7.5)."""
    parts = event.event.split(".")
    role = parts[1] if len(parts) > 2 and parts[0] == "prefect" else ""
    match_related: dict[str, str] = {}
    for_each: list[str] = []
    if role in ("flow-run", "work-queue"):
        wanted = "flow" if role == "flow-run" else "work-queue"
        for_each = ["prefect.resource.id"]
        found = next((r for r in event.related if r.get("prefect.resource.role") == wanted), None)
        if found:
            match_related = {
                "prefect.resource.role": wanted,
                "prefect.resource.id": found["prefect.resource.id"],
            }
    return {
        "type": "event",
        "match": {"prefect.resource.id": event.resource_id},
        "match_related": match_related,
        "after": [],
        "expect": [event.event],
        "for_each": for_each,
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    }


@dataclass
class Clause:
    """One condition of a trigger, checked against one event."""

    name: str
    passed: bool | None  # None: not applicable / informational
    expected: str
    actual: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "clause": self.name,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
            "note": self.note,
        }


def explain(
    trigger: Any,
    event: Event,
    *,
    bucket: Bucket | None = None,
    bucket_for: Any = None,
) -> list[Clause]:
    """Each clause of each event trigger, with pass/fail and the value it compared.

    For a composite trigger every child event trigger is explained, prefixed by its path.
    `bucket_for(trigger, key)` looks up the open window of a trigger (the engine's state).
    """
    clauses: list[Clause] = []
    for path, child in _event_triggers_with_paths(trigger):
        window = bucket if path == "" else None
        if bucket_for is not None:
            window = bucket_for(child, child.bucketing_key(event))
        for clause in _explain_event_trigger(child, event, window):
            if path:
                clause.name = f"{path} {clause.name}"
            clauses.append(clause)
    return clauses


def _event_triggers_with_paths(trigger: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(trigger, EventTrigger):
        yield path, trigger
        return
    for i, child in enumerate(trigger.triggers):
        yield from _event_triggers_with_paths(child, f"{path}triggers[{i}]")


def _fmt(patterns: Any) -> str:
    if isinstance(patterns, list):
        return " or ".join(repr(p) for p in patterns) if patterns else "(no pattern: nothing)"
    return repr(patterns)


def _explain_event_trigger(
    trigger: EventTrigger, event: Event, bucket: Bucket | None
) -> list[Clause]:
    out: list[Clause] = []
    if event.event in NEVER_EVALUATED:
        out.append(
            Clause(
                "event", False, "any event but prefect.log.write", event.event, "never evaluated"
            )
        )
    if trigger.match:
        for label, patterns in trigger.match.items():
            value = event.resource.get(label)
            out.append(
                Clause(
                    f"match {label}",
                    label_matches(patterns, value),
                    _fmt(patterns),
                    "(missing)" if value is None else repr(value),
                )
            )
    else:
        out.append(Clause("match", True, "{} (any resource)", event.resource_id))
    for i, spec in enumerate(trigger.related_specs()):
        name = (
            "match_related"
            if not isinstance(trigger.match_related, list)
            else f"match_related[{i}]"
        )
        if not spec:
            out.append(Clause(name, True, "{} (anything)", f"{len(event.related)} related"))
            continue
        winner = next((r for r in event.related if labels_match(spec, r)), None)
        expected = ", ".join(f"{k}={_fmt(v)}" for k, v in spec.items())
        if winner is not None:
            actual = f"{winner.get('prefect.resource.role')}: {winner.get('prefect.resource.id')}"
        elif event.related:
            actual = "none of: " + "; ".join(
                f"{r.get('prefect.resource.role')}: {r.get('prefect.resource.id')}"
                for r in event.related
            )
        else:
            actual = "(no related resources)"
        out.append(Clause(name, winner is not None, expected, actual))
    expects = trigger.expects(event.event)
    out.append(
        Clause(
            "expect",
            expects,
            _fmt(trigger.expect) if trigger.expect else "(empty: any event)",
            repr(event.event),
        )
    )
    if trigger.after:
        out.append(
            Clause(
                "after",
                trigger.starts_after(event.event),
                _fmt(trigger.after),
                repr(event.event),
                "an `after` event opens the window; otherwise a window must already be open",
            )
        )
    key = trigger.bucketing_key(event)
    if trigger.for_each:
        out.append(
            Clause(
                "for_each",
                None,
                ", ".join(sorted(trigger.for_each)),
                ", ".join(f"{k}={v!r}" for k, v in trigger.labels_for(key).items()),
                "the bucket this event counts in",
            )
        )
    if bucket is not None:
        inside = bucket.start <= event.occurred < bucket.end or trigger.immediate
        out.append(
            Clause(
                "window",
                inside,
                f"{bucket.start.isoformat()} ≤ occurred < {bucket.end.isoformat()}",
                event.occurred.isoformat(),
                f"bucket count {bucket.count}",
            )
        )
    out.append(
        Clause(
            "posture",
            None,
            trigger.posture,
            f"threshold {trigger.threshold} within {trigger.within.total_seconds():g} s",
            "Reactive: fires when the count reaches the threshold; "
            "Proactive: fires when a window ends with fewer",
        )
    )
    return out
