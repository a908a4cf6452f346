"""What action templates see: Prefect's template context (reference §5.6), rendered in the one
sandbox (`events.templating`, action flavour) inside a template worker process
(`events.webhooks.render_workers`: a hard deadline that kills, a memory limit), so templates
written for Prefect work here:
`{{ event.resource.name }}`, `{{ event.payload.x }}`, `{{ automation.name }}`, `{{ event|tojson }}`,
`{{ labels.prefect.resource.id }}`."""

from __future__ import annotations

from typing import Any

from automations.actions.base import ERROR_LIMIT, ActionFailed
from events import schema, templating
from events.schema import Event
from events.webhooks import render_workers


def maybe_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def validate_template(text: str) -> None:
    """Check syntax and the sandbox's static limits; raise ValueError with the reason."""
    if not maybe_template(text):
        return
    try:
        templating.check_template(text, templating.ACTIONS)
    except templating.TemplateInvalid as exc:
        raise ValueError(f"is not a valid template: {exc}") from None


def render(text: str, context: dict[str, Any]) -> str:
    """Render a user template; a failure is an `ActionFailed` carrying Prefect's details."""
    if not maybe_template(text):
        return text
    try:
        # In a template worker process: killed past its deadline, memory-limited.
        return render_workers.render_isolated(text, context, environment="actions")
    except (templating.TemplateInvalid, templating.RenderFailed) as exc:
        raise ActionFailed(
            f"Template rendering failed: {exc}"[:ERROR_LIMIT],
            {
                "template_error": f"Failed to render template: {exc}"[:ERROR_LIMIT],
                "template_source": text,
            },
        ) from exc


def render_structure(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside a JSON structure (keys stay as written)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_structure(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_structure(v, context) for v in value]
    return value


def templates_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if maybe_template(value) else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in templates_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in templates_in(v)]
    return []


class TemplateResource(dict):
    """A resource's labels, as Prefect's `Resource`: `.id`, `.name`, `.role`, `["label"]`."""

    @property
    def id(self) -> str:
        return self.get(schema.RESOURCE_ID, "")

    @property
    def name(self) -> str | None:
        return self.get("prefect.resource.name")

    @property
    def role(self) -> str | None:
        return self.get(schema.RESOURCE_ROLE)


class TemplateEvent(dict):
    """An event as templates see it: Prefect's ReceivedEvent fields, items or attributes."""

    @classmethod
    def of(cls, event: Event | None) -> TemplateEvent | None:
        if event is None:
            return None
        return cls(
            occurred=event.occurred,
            event=event.event,
            resource=TemplateResource(event.resource),
            related=[TemplateResource(r) for r in event.related],
            payload=event.payload,
            id=event.id,
            follows=event.follows,
            received=event.received,
        )

    def __str__(self) -> str:
        return templating.prefect_dumps(self)


class LabelDiver:
    """Dotted labels as nested attributes: `labels.prefect.resource.id` (Prefect's LabelDiver)."""

    def __init__(self, labels: dict[str, str], value: str = ""):
        self._labels = dict(labels)
        self._value = value
        nested: dict[str, dict[str, str]] = {}
        values: dict[str, str] = {}
        for key, label in labels.items():
            head, _, tail = key.partition(".")
            if tail:
                nested.setdefault(head, {})[tail] = label
            else:
                values[head] = label
        self._divers = {k: LabelDiver(v, values.pop(k, "")) for k, v in nested.items()}
        self._divers.update({k: LabelDiver({}, v) for k, v in values.items()})

    def __str__(self) -> str:
        return self._value or ""

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self):
        return iter(self._labels.items())

    def keys(self):
        return self._labels.keys()

    def __json__(self) -> dict[str, str]:
        return dict(self._labels)

    def __getitem__(self, key: str) -> str:
        return self._labels[key]

    def __getattr__(self, name: str) -> LabelDiver:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._divers[name]
        except KeyError:
            raise AttributeError(name) from None


def template_context(
    *,
    automation: dict[str, Any],
    event: Event | None,
    labels: dict[str, str],
    firing: dict[str, Any] | None,
    events: list[Event],
) -> dict[str, Any]:
    firings = _flatten_firings(firing) if firing else []
    return {
        "automation": automation,
        "event": TemplateEvent.of(event),
        "labels": LabelDiver(labels),
        "firing": firing,
        "firings": firings,
        "events": [TemplateEvent.of(e) for e in events],
    }


def _flatten_firings(firing: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        firing,
        *(f for child in firing.get("triggering_firings", []) for f in _flatten_firings(child)),
    ]
