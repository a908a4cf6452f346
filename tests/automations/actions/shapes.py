"""The documented shapes of each service's webhook body, as checks that list what is wrong.

- Slack incoming webhooks, Block Kit: https://api.slack.com/reference/block-kit/blocks
  (`text` fallback; header ≤ 150 plain_text; section text ≤ 3000; button text ≤ 75, url ≤ 3000;
  at most 50 blocks).
- Teams workflow webhooks: a message whose attachment is an Adaptive Card
  (`contentType` application/vnd.microsoft.card.adaptive; card `type` AdaptiveCard, `version`).
- PagerDuty Events API v2: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
  (`routing_key` 32 chars, `event_action`, `dedup_key` ≤ 255; trigger needs payload.summary
  ≤ 1024, payload.source, payload.severity in critical/error/warning/info, ISO 8601 timestamp).
- Discord execute-webhook: https://discord.com/developers/docs/resources/webhook
  (content ≤ 2000, ≤ 10 embeds, title ≤ 256, description ≤ 4096, all embed text ≤ 6000).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _text(value: Any, limit: int, where: str, problems: list[str]) -> None:
    if not isinstance(value, str) or not value:
        problems.append(f"{where} must be a non-empty string")
    elif len(value) > limit:
        problems.append(f"{where} is longer than {limit}")


def slack_problems(body: dict) -> list[str]:
    problems: list[str] = []
    _text(body.get("text"), 40_000, "text", problems)
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return problems + ["blocks must be a list of 1 to 50 blocks"]
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text":
                problems.append(f"blocks[{i}] header text must be plain_text")
            _text(text.get("text"), 150, f"blocks[{i}].text", problems)
        elif kind == "section":
            text = block.get("text", {})
            if text.get("type") not in ("mrkdwn", "plain_text"):
                problems.append(f"blocks[{i}] section text type")
            _text(text.get("text"), 3000, f"blocks[{i}].text", problems)
        elif kind == "actions":
            for j, element in enumerate(block.get("elements", [])):
                if element.get("type") != "button":
                    problems.append(f"blocks[{i}].elements[{j}] is not a button")
                _text(element.get("text", {}).get("text"), 75, "button text", problems)
                url = element.get("url", "")
                if not url.startswith(("http://", "https://")) or len(url) > 3000:
                    problems.append("button url")
        else:
            problems.append(f"blocks[{i}] has an unexpected type {kind!r}")
    return problems


def teams_problems(body: dict) -> list[str]:
    problems: list[str] = []
    if body.get("type") != "message":
        problems.append("type must be message")
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return problems + ["attachments must hold one card"]
    attachment = attachments[0]
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append("contentType")
    card = attachment.get("content") or {}
    if card.get("type") != "AdaptiveCard":
        problems.append("content.type must be AdaptiveCard")
    if card.get("version") not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
        problems.append("content.version")
    if not str(card.get("$schema", "")).startswith("http://adaptivecards.io/schemas/"):
        problems.append("$schema")
    for element in card.get("body", []):
        if element.get("type") != "TextBlock" or not isinstance(element.get("text"), str):
            problems.append("body elements must be TextBlocks with text")
    for action in card.get("actions", []):
        if (
            action.get("type") != "Action.OpenUrl"
            or not action.get("url")
            or not action.get("title")
        ):
            problems.append("actions must be Action.OpenUrl with title and url")
    if not card.get("body"):
        problems.append("the card has no body")
    return problems


def pagerduty_problems(body: dict) -> list[str]:
    problems: list[str] = []
    if not isinstance(body.get("routing_key"), str) or len(body["routing_key"]) != 32:
        problems.append("routing_key must be the 32-character integration key")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        problems.append("event_action")
    _text(body.get("dedup_key"), 255, "dedup_key", problems)
    if action == "trigger":
        payload = body.get("payload") or {}
        _text(payload.get("summary"), 1024, "payload.summary", problems)
        _text(payload.get("source"), 255, "payload.source", problems)
        if payload.get("severity") not in ("critical", "error", "warning", "info"):
            problems.append("payload.severity")
        if "timestamp" in payload:
            try:
                datetime.fromisoformat(payload["timestamp"])
            except ValueError:
                problems.append("payload.timestamp must be ISO 8601")
        for link in body.get("links", []):
            if not link.get("href"):
                problems.append("links need href")
    return problems


def discord_problems(body: dict) -> list[str]:
    problems: list[str] = []
    content = body.get("content", "")
    embeds = body.get("embeds", [])
    if not content and not embeds:
        problems.append("content or embeds is required")
    if len(content) > 2000:
        problems.append("content is longer than 2000")
    if len(embeds) > 10:
        problems.append("at most 10 embeds")
    total = 0
    for embed in embeds:
        title, description = embed.get("title", ""), embed.get("description", "")
        if len(title) > 256:
            problems.append("embed title is longer than 256")
        if len(description) > 4096:
            problems.append("embed description is longer than 4096")
        total += len(title) + len(description) + len(embed.get("footer", {}).get("text", ""))
        if "timestamp" in embed:
            try:
                datetime.fromisoformat(embed["timestamp"])
            except ValueError:
                problems.append("embed timestamp must be ISO 8601")
    if total > 6000:
        problems.append("embeds hold more than 6000 characters")
    if "username" in body and not 1 <= len(body["username"]) <= 80:
        problems.append("username")
    return problems
