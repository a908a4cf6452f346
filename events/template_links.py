"""Prefect's `ui_url` and `ui_resource_events_url` template filters, on eventsite's pages.

The objects of the action context (`automations.actions.context`: the event, its resources,
the automation, the firing) carry their links, absolute and built from `EVENTSITE_PUBLIC_URL`
where the context is made, in an attribute that templates cannot read (the sandbox refuses
names starting with `_`). The filters only look them up, so they work the same in a template
worker process. Like Prefect's, they give None for anything else.
"""

from __future__ import annotations

from typing import Any

ATTRIBUTE = "_eventsite_links"


def attach(obj: Any, *, ui: str | None = None, events: str | None = None) -> Any:
    """Give `obj` (a dict subclass of the template context) its page and its events' page."""
    setattr(obj, ATTRIBUTE, {"ui": ui, "events": events})
    return obj


def _link(obj: Any, kind: str) -> str | None:
    links = getattr(obj, ATTRIBUTE, None)
    return links.get(kind) if isinstance(links, dict) else None


def ui_url(obj: Any) -> str | None:
    """The page of an event, a resource, the automation or the firing."""
    return _link(obj, "ui")


def ui_resource_events_url(obj: Any) -> str | None:
    """The feed filtered to a resource (the automation's own, an event's primary resource)."""
    return _link(obj, "events")


FILTERS = {"ui_url": ui_url, "ui_resource_events_url": ui_resource_events_url}
