"""Links in notifications: the page to open about a run (`eventsite.links.public_url`)."""

from __future__ import annotations

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
    return public_url(f"/automations/{ctx.automation.id}/")
