"""Notification presets: Slack, Microsoft Teams, PagerDuty and Discord, each in its own format.

Each is an action kind with its own fields and a body built for the service's documented format:

- `notify-slack`: an incoming webhook, Block Kit (header, section, a link button);
- `notify-teams`: a Teams workflow webhook ("When a Teams webhook request is received"), a
  message carrying an Adaptive Card;
- `notify-pagerduty`: Events API v2, `trigger` when the automation fires and `resolve` when it
  resolves (a run for `actions_on_resolve`, whose `event` is `prefect.automation.resolved`),
  with one `dedup_key` per automation and `for_each` key so the two meet;
- `notify-discord`: a channel webhook, one embed, mentions disabled.

Webhook URLs and routing keys are credentials (`secret_fields`). The message defaults link to
the event (or, with none, to the automation) through `eventsite.links.public_url`. Text from
events is escaped for each format, so an event cannot ping a channel or inject markup.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from automations.actions import outbound
from automations.actions.base import Action, Outcome, RunContext
from automations.actions.context import render
from automations.actions.kinds import check_http_url, http_call
from automations.actions.links import RESOLVED, automation_link, event_link

DEFAULT_TITLE = "{{ automation.name }}"
DEFAULT_MESSAGE = (
    "{% if event %}{{ event.event }} on {{ event.resource.name or event.resource.id }}"
    "{% else %}The expected events did not arrive{% endif %}"
)
DEFAULT_SUMMARY = "{{ automation.name }}: " + DEFAULT_MESSAGE
DEFAULT_SOURCE = "{{ event.resource.id if event else 'eventsite' }}"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
TIMEOUT = 10.0


def is_resolve(ctx: RunContext) -> bool:
    """A run for `actions_on_resolve`: its event is the `prefect.automation.resolved` event."""
    return ctx.triggering_event is not None and ctx.triggering_event.event == RESOLVED


def triggering_labels(ctx: RunContext) -> dict[str, str]:
    """The firing's `for_each` labels (for a resolve run, those the resolved event carries)."""
    if is_resolve(ctx):
        labels = ctx.triggering_event.payload.get("triggering_labels")
        if isinstance(labels, dict):
            return {str(k): str(v) for k, v in labels.items()}
    firing = ctx.template.get("firing") or {}
    return dict(firing.get("triggering_labels") or {})


def dedup_key(ctx: RunContext) -> str:
    """One key per automation and `for_each` key: the firing's trigger and its resolve meet."""
    labels = triggering_labels(ctx)
    key = f"eventsite-{ctx.automation.id}"
    if labels:
        digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        key += f"-{digest}"
    return key


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn control characters; escaping `<` also stops <!channel> pings from events.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ChatPreset(Action):
    """A message to a chat service's incoming webhook; its URL is the credential."""

    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url",)
    block_type: ClassVar[str] = ""
    service: ClassVar[str] = ""
    webhook_url: str
    title: str = DEFAULT_TITLE
    message: str = DEFAULT_MESSAGE

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    def templates(self) -> dict[str, str]:
        return {"title": self.title, "message": self.message}

    def describe(self) -> str:
        return f"{self.label} ({outbound.origin(self.webhook_url)}/…)"

    def body(self, ctx: RunContext, title: str, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, ctx: RunContext) -> Outcome:
        title = render(self.title, ctx.template).strip() or "eventsite"
        message = render(self.message, ctx.template).strip() or title
        return http_call(
            "POST",
            self.webhook_url,
            shown_url=f"{outbound.origin(self.webhook_url)}/…",
            headers={},
            body=json.dumps(self.body(ctx, title, message)),
            content_type="application/json",
            timeout=TIMEOUT,
            delivery=ctx.invocation,
            test=ctx.is_test,
            related=[
                {
                    "prefect.resource.id": f"prefect.block-type.{self.block_type}",
                    "prefect.resource.role": "block-type",
                }
            ],
            what=self.service,
        )


class NotifySlack(ChatPreset):
    type: Literal["notify-slack"] = "notify-slack"
    label: ClassVar[str] = "Slack message"
    block_type: ClassVar[str] = "slack-webhook"
    service: ClassVar[str] = "Slack"

    def body(self, ctx: RunContext, title: str, message: str) -> dict[str, Any]:
        link_text, link = event_link(ctx)
        return {
            "text": _cut(f"{title}: {message}", 3000),  # the notification's fallback text
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": _cut(title, 150), "emoji": True},
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": _cut(_slack_escape(message), 3000)},
                },
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": link_text},
                            "url": link,
                        }
                    ],
                },
            ],
        }


class NotifyTeams(ChatPreset):
    type: Literal["notify-teams"] = "notify-teams"
    label: ClassVar[str] = "Microsoft Teams message"
    block_type: ClassVar[str] = "ms-teams-webhook"
    service: ClassVar[str] = "Teams"

    def body(self, ctx: RunContext, title: str, message: str) -> dict[str, Any]:
        link_text, link = event_link(ctx)
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "text": title,
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                },
                # Plain text: Adaptive Card markdown would let an event add links.
                {"type": "TextBlock", "text": message, "wrap": True, "isSubtle": False},
            ],
            "actions": [{"type": "Action.OpenUrl", "title": link_text, "url": link}],
        }
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }


class NotifyDiscord(ChatPreset):
    type: Literal["notify-discord"] = "notify-discord"
    label: ClassVar[str] = "Discord message"
    block_type: ClassVar[str] = "discord-webhook"
    service: ClassVar[str] = "Discord"
    username: str = Field(default="", max_length=80)

    def body(self, ctx: RunContext, title: str, message: str) -> dict[str, Any]:
        _, link = event_link(ctx)
        data: dict[str, Any] = {
            "content": _cut(title, 2000),
            "embeds": [
                {
                    "title": _cut(title, 256),
                    "description": _cut(message, 4096),
                    "url": link,
                    "color": 0x2F6FEB,
                    "footer": {"text": "eventsite"},
                }
            ],
            # Nothing an event says may ping @everyone, a role or a user.
            "allowed_mentions": {"parse": []},
        }
        if ctx.triggering_event is not None:
            data["embeds"][0]["timestamp"] = ctx.triggering_event.occurred.isoformat()
        if self.username:
            data["username"] = self.username
        return data


class NotifyPagerDuty(Action):
    """PagerDuty Events API v2: trigger on a firing, resolve when the automation resolves."""

    type: Literal["notify-pagerduty"] = "notify-pagerduty"
    label: ClassVar[str] = "PagerDuty incident"
    secret_fields: ClassVar[tuple[str, ...]] = ("routing_key",)
    routing_key: str = Field(min_length=1)
    severity: Literal["critical", "error", "warning", "info"] = "error"
    summary: str = DEFAULT_SUMMARY
    source: str = DEFAULT_SOURCE
    # PagerDuty's EU service (events.eu.pagerduty.com) has its own address.
    api_url: str = PAGERDUTY_URL

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    def templates(self) -> dict[str, str]:
        return {"summary": self.summary, "source": self.source}

    def describe(self) -> str:
        return f"PagerDuty {self.severity} (trigger, resolve)"

    def execute(self, ctx: RunContext) -> Outcome:
        body: dict[str, Any] = {
            "routing_key": self.routing_key,
            "dedup_key": dedup_key(ctx),
        }
        if is_resolve(ctx):
            body["event_action"] = "resolve"
        else:
            event = ctx.triggering_event
            link_text, link = event_link(ctx)
            summary = render(self.summary, ctx.template).strip() or "eventsite"
            source = render(self.source, ctx.template).strip() or "eventsite"
            details: dict[str, Any] = {"triggering_labels": triggering_labels(ctx)}
            if event is not None:
                details.update(event=event.event, resource=dict(event.resource))
            body.update(
                event_action="trigger",
                payload={
                    "summary": _cut(summary, 1024),
                    "source": _cut(source, 255),
                    "severity": self.severity,
                    "timestamp": (event.occurred if event else ctx.triggered).isoformat(),
                    "component": _cut(ctx.automation.name, 255),
                    "class": event.event[:255] if event else "absence",
                    "custom_details": details,
                },
                links=[
                    {"href": link, "text": link_text},
                    {"href": automation_link(ctx), "text": "Automation"},
                ],
                client="eventsite",
                client_url=automation_link(ctx),
            )
        return http_call(
            "POST",
            self.api_url,
            shown_url=self.api_url,
            headers={},
            body=json.dumps(body),
            content_type="application/json",
            timeout=TIMEOUT,
            delivery=ctx.invocation,
            test=ctx.is_test,
            related=[
                {
                    "prefect.resource.id": "prefect.block-type.pager-duty-webhook",
                    "prefect.resource.role": "block-type",
                }
            ],
            what="PagerDuty",
        )
