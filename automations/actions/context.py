"""What action templates see: Prefect's template context (reference §5.6), rendered in the one
sandbox (`events.templating`, action flavour) inside a template worker process
(`events.webhooks.render_workers`: a hard deadline that kills, a memory limit), so templates
written for Prefect work here:
`{{ event.resource.name }}`, `{{ event.payload.x }}`, `{{ automation.name }}`, `{{ event|tojson }}`,
`{{ labels.prefect.resource.id }}`."""

from __future__ import annotations

import uuid
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from automations.actions import links
from automations.actions.base import ERROR_LIMIT, ActionFailed
from events import schema, template_links, templating
from events.schema import Event
from events.webhooks import render_workers

# The names of the action context (`template_context`): what a template may use.
CONTEXT_NAMES = ("automation", "event", "labels", "firing", "firings", "events")


def maybe_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def validate_template(text: str, *, strict: bool = False) -> None:
    """Check syntax and the sandbox's static limits; raise ValueError with the reason.

    `strict` (when an automation is saved) also refuses unknown filters, tests and variables:
    Jinja finds an unknown filter only when it compiles the branch using it, and an unknown
    variable never (it renders as nothing), so both would surface at the first firing, or not
    at all. Stored definitions are not held to it when they run.
    """
    if not maybe_template(text):
        return
    try:
        if strict:
            _check_names(text)
        templating.check_template(text, templating.ACTIONS)
    except templating.TemplateInvalid as exc:
        raise ValueError(f"is not a valid template: {exc}") from None


def _check_names(text: str) -> None:
    env = templating.ACTIONS
    if len(text) > templating.MAX_TEMPLATE_CHARS:
        return  # `check_template` refuses it without parsing it
    try:
        tree = env.parse(text)
    except TemplateSyntaxError:
        return  # `check_template` says what is wrong
    for node in tree.find_all(nodes.Filter):
        if node.name not in env.filters:
            raise templating.TemplateInvalid(f"unknown filter {node.name!r}")
    for node in tree.find_all(nodes.Test):
        if node.name not in env.tests:
            raise templating.TemplateInvalid(f"unknown test {node.name!r}")
    unknown = sorted(meta.find_undeclared_variables(tree) - {*CONTEXT_NAMES, *env.globals})
    if unknown:
        raise templating.TemplateInvalid(
            f"unknown variable {unknown[0]!r}; the context has {', '.join(CONTEXT_NAMES)}"
        )


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

    @classmethod
    def of(cls, labels: dict[str, str]) -> TemplateResource:
        resource = cls(labels)
        resource_id = resource.id
        if not resource_id:
            return resource
        return template_links.attach(
            resource,
            ui=links.resource_url(resource_id),
            events=links.resource_events_url(resource_id),
        )

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
        made = cls(
            occurred=event.occurred,
            event=event.event,
            resource=TemplateResource.of(event.resource),
            related=[TemplateResource.of(r) for r in event.related],
            payload=event.payload,
            id=event.id,
            follows=event.follows,
            received=event.received,
        )
        return template_links.attach(
            made,
            ui=links.event_url(event.id),
            events=links.resource_events_url(event.resource.get(schema.RESOURCE_ID, "")),
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


class TemplateObject(dict):
    """The automation or the firing: a plain structure with its links (`ui_url`)."""


def template_context(
    *,
    automation: dict[str, Any],
    event: Event | None,
    labels: dict[str, str],
    firing: dict[str, Any] | None,
    events: list[Event],
    firing_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Prefect's context; `firing_id` is the stored firing's (its page), when there is one."""
    firings = _flatten_firings(firing) if firing else []
    if automation.get("id"):
        automation = template_links.attach(
            TemplateObject(automation),
            ui=links.automation_url(automation["id"]),
            events=links.resource_events_url(f"prefect.automation.{automation['id']}"),
        )
    if firing is not None and firing_id is not None:
        firing = template_links.attach(TemplateObject(firing), ui=links.firing_url(firing_id))
        firings[0] = firing
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
