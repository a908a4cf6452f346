"""Links in notifications: the page to open about a run (`eventsite.links.public_url`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from automations.actions.base import RunContext
from eventsite.links import public_url

RESOLVED = "prefect.automation.resolved"


def event_link(ctx: RunContext) -> tuple[str, str]:
    """(text, absolute URL) of the page to open: the event, or the automation without one."""
    event = ctx.triggering_event
    if event is not None and event.event != RESOLVED:
        return "View event", public_url(f"/events/{event.id}/")
    return "View automation", automation_link(ctx)


def automation_link(ctx: RunContext) -> str:
    return automation_url(ctx.automation.id)


# The pages of things a template can link to (`ui_url`, `ui_resource_events_url`).


def event_url(event_id: Any) -> str:
    return public_url(f"/events/{event_id}/")


def resource_url(resource_id: str) -> str:
    return public_url(f"/resources/{quote(resource_id, safe='')}/")


def resource_events_url(resource_id: str) -> str | None:
    """The feed filtered to one resource."""
    return public_url("/events/?" + urlencode({"resource": resource_id})) if resource_id else None


def automation_url(automation_id: Any) -> str:
    return public_url(f"/automations/{automation_id}/")


def firing_url(firing_id: Any) -> str:
    return public_url(f"/automations/firings/{firing_id}/")
