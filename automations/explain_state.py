"""What held at an event's time, for explain: the trigger state replayed up to the event.

`state_at` replays the engine over the stored log (`explain.replay_stored`, the simulation the
preview uses) up to the event, and looks at the trigger state just before and just after the
engine evaluated it: each event trigger's window for the event's key (count against the
threshold, [start, end), the debounce after a firing), the children a composite trigger has
seen fire, in order. Nothing here evaluates a trigger itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from automations.triggers import Bucket, Evaluator, EventTrigger, Firing
from events.schema import Event


def trigger_paths(trigger: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every trigger of the tree with its path (`""` for the top, `triggers[1]` …)."""
    yield path, trigger
    for i, child in enumerate(getattr(trigger, "triggers", None) or []):
        yield from trigger_paths(child, f"{path}triggers[{i}]")


def _name(path: str) -> str:
    return path or "the trigger"


def _window(bucket: Bucket | None) -> dict[str, Any] | None:
    if bucket is None:
        return None
    return {"start": bucket.start.isoformat(), "end": bucket.end.isoformat(), "count": bucket.count}


def _t(value: str | datetime) -> str:
    text = value if isinstance(value, str) else value.isoformat()
    return text.replace("T", " ")[:19]


class Watch:
    """Observes one event in a replay (`replay(observe=…)`): the state before and after it."""

    def __init__(self, trigger: Any, event: Event):
        self.trigger = trigger
        self.event = event
        self.seen = False
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.fired: list[Firing] = []

    def __call__(self, event: Event, evaluator: Evaluator | None):
        if event.id != self.event.id or evaluator is None:
            return None
        self.seen = True
        self.before = self._state(evaluator)

        def done(fired: list[Firing]) -> None:
            self.after = self._state(evaluator)
            self.fired = fired

        return done

    def _state(self, evaluator: Evaluator) -> dict[str, Any]:
        state = evaluator.state
        out: dict[str, Any] = {}
        for path, child in trigger_paths(self.trigger):
            if isinstance(child, EventTrigger):
                key = child.bucketing_key(self.event)
                out[path] = _window(state.bucket(child.id, key))
            else:
                fired = state.child_firings.get(child.id, {})
                out[path] = {str(k): f.triggered.isoformat() for k, f in fired.items()}
        return out

    def report(self) -> dict[str, Any]:
        """The state at the event's time, by trigger, with a sentence for each."""
        fired_ids = {f.trigger.id for firing in self.fired for f in firing.all_firings()}
        windows, composites = [], []
        for path, child in trigger_paths(self.trigger):
            if isinstance(child, EventTrigger):
                windows.append(self._event_trigger(path, child, fired_ids))
            else:
                composites.append(self._composite(path, child, fired_ids))
        reasons = [c["reason"] for c in composites] + [w["reason"] for w in windows]
        return {
            "replayed": self.seen,
            "reason": reasons[0],  # the top trigger's: composites come first, the top first
            "fired": bool(self.fired),
            "windows": windows,
            "composites": composites,
            "reasons": reasons,
        }

    def _event_trigger(self, path: str, child: EventTrigger, fired_ids: set) -> dict[str, Any]:
        event = self.event
        key = list(child.bucketing_key(event))
        before, after = self.before.get(path), self.after.get(path)
        keyed = f" for {', '.join(key)}" if key else ""
        debounced_until = None
        name = _name(path)
        if not child.covers(event):
            reason = f"{name}: the event does not match it (see the clauses)."
        elif child.id in fired_ids:
            reason = f"{name} fired on this event{keyed}."
        elif child.reactive and before and event.occurred < datetime.fromisoformat(before["start"]):
            debounced_until = before["start"]
            reason = (
                f"{name}: the event fell in the debounce period after a firing{keyed}: the next "
                f"window starts at {_t(before['start'])}, and events before it change nothing."
            )
        elif child.reactive and after:
            reason = (
                f"{name}: the window [{_t(after['start'])}, {_t(after['end'])}){keyed} counted "
                f"{after['count']} of the {child.threshold} events it needs: not enough yet."
            )
        elif not child.reactive and after:
            verdict = (
                "so that window will not fire"
                if after["count"] >= child.threshold
                else "still fewer than needed: it fires if the window ends so"
            )
            reason = (
                f"{name} (proactive) fires when a window ends with fewer than {child.threshold} "
                f"events; this event counts in [{_t(after['start'])}, {_t(after['end'])}){keyed}: "
                f"{after['count']} so far, {verdict}."
            )
        elif child.after and not child.starts_after(event.event):
            reason = (
                f"{name}: no window was open{keyed}; windows open with an `after` event "
                f"({', '.join(child.after)}), and none came before this one."
            )
        else:
            reason = f"{name}: the event was counted; no window stays open{keyed}."
        return {
            "trigger": path,
            "key": key,
            "posture": child.posture,
            "threshold": child.threshold,
            "within": child.within.total_seconds(),
            "before": before,
            "after": after,
            "debounced_until": debounced_until,
            "reason": reason,
        }

    def _composite(self, path: str, parent: Any, fired_ids: set) -> dict[str, Any]:
        seen = self.after.get(path) or {}
        children = []
        for i, child in enumerate(parent.triggers):
            at = seen.get(str(child.id))
            children.append({"trigger": f"{path}triggers[{i}]", "fired": at})
        done = [c for c in children if c["fired"]]
        listed = "; ".join(
            f"{c['trigger']} {'fired at ' + _t(c['fired']) if c['fired'] else 'not yet'}"
            for c in children
        )
        name = _name(path)
        if parent.id in fired_ids:
            reason = f"{name} ({parent.type}) fired on this event."
        elif parent.type == "sequence":
            reason = (
                f"{name} (sequence) needs its {len(children)} triggers to fire in order; "
                f"so far: {listed}."
            )
        else:
            reason = (
                f"{name} (compound, require {parent.require}) has {len(done)} of "
                f"{parent.num_expected_firings} children fired: {listed}."
            )
        return {
            "trigger": path,
            "type": parent.type,
            "require": str(getattr(parent, "require", "all")),
            "children": children,
            "reason": reason,
        }


def absences(trigger: Any, firing: dict[str, Any]) -> list[str]:
    """For a firing caused by absence: which proactive window ended too empty, in words.

    `firing` is the stored firing tree (`Firing.firing`); each proactive trigger in it fired
    because its window for a key ended with fewer events than its threshold, at or before the
    moment it fired (the engine evaluates a window at its end, on its next tick).
    """
    by_id = {str(child.id): (path, child) for path, child in trigger_paths(trigger)}
    out = []
    for node in _flatten(firing):
        path, child = by_id.get(str(node.get("trigger_id")), ("", None))
        if not isinstance(child, EventTrigger) or child.reactive or node.get("state") == "Resolved":
            continue
        labels = node.get("triggering_labels") or {}
        keyed = " for " + ", ".join(f"{k}={v}" for k, v in labels.items()) if labels else ""
        within = child.within.total_seconds()
        expected = " or ".join(child.expect) or "any event"
        last = node.get("triggering_event")
        seen = (
            f" The last event it saw there: {last['event']} at {_t(last['occurred'])}."
            if last
            else ""
        )
        out.append(
            f"{_name(path)}: the {within:g} s window{keyed} that ended by "
            f"{_t(node['triggered'])} held fewer than {child.threshold} {expected} "
            f"event{'s' if child.threshold != 1 else ''}.{seen}"
        )
    return out


def _flatten(firing: dict[str, Any]) -> list[dict[str, Any]]:
    return [firing, *(f for c in firing.get("triggering_firings", []) for f in _flatten(c))]
