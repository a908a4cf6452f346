"""The registry of action kinds by `type`, and the validation of an action definition."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from automations.actions.base import Action, SecretMissing
from automations.actions.context import validate_template
from automations.actions.kinds import (
    CallWebhook,
    DoNothing,
    EmitEvent,
    PauseAutomation,
    ResumeAutomation,
    SendEmail,
)
from automations.actions.presets import NotifyDiscord, NotifyPagerDuty, NotifySlack, NotifyTeams

ACTIONS: dict[str, type[Action]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        DoNothing,
        CallWebhook,
        SendEmail,
        NotifySlack,
        NotifyTeams,
        NotifyPagerDuty,
        NotifyDiscord,
        EmitEvent,
        PauseAutomation,
        ResumeAutomation,
    )
}

# Prefect's type names for the two kinds that eventsite stores under names of its own: Prefect's
# client knows these with a `block_document_id` only, and would refuse ours.
LEGACY_TYPES = {
    "call-webhook": ("url", "call-webhook-url"),
    "send-notification": ("to", "send-email"),
}


class ActionsInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with Prefect's type name replaced by eventsite's where it has eventsite's shape."""
    legacy = LEGACY_TYPES.get(data.get("type"))
    if legacy and legacy[0] in data:
        return {**data, "type": legacy[1]}
    return data


def parse_action(
    data: Any,
    *,
    loc: str = "action",
    previous: dict[str, Any] | None = None,
    strict: bool = False,
) -> Action:
    """Validate one action (and its templates); raise `ActionsInvalid` with field errors.

    `previous` is the stored definition this one replaces, whose secrets a `REDACTED` value
    keeps (see `Action.keep_secrets`). `strict` (saving) also refuses templates that use an
    unknown filter or variable (`validate_template`).
    """
    if not isinstance(data, dict):
        raise ActionsInvalid([{"field": loc, "message": "must be a JSON object"}])
    if not isinstance(data.get("type"), str):
        raise ActionsInvalid([{"field": f"{loc}.type", "message": "must be a string"}])
    data = normalized(data)
    kind = data.get("type")
    if kind in LEGACY_TYPES and "block_document_id" in data:
        field, new = LEGACY_TYPES[kind]
        raise ActionsInvalid(
            [
                {
                    "field": f"{loc}.block_document_id",
                    "message": (
                        f"eventsite has no blocks: give {kind} a `{field}` instead of Prefect's "
                        f"`block_document_id` (it is stored as `{new}`), or use a preset "
                        "(notify-slack, notify-teams, notify-pagerduty, notify-discord)"
                    ),
                }
            ]
        )
    cls = ACTIONS.get(kind)
    if cls is None:
        raise ActionsInvalid(
            [
                {
                    "field": f"{loc}.type",
                    "message": f"unknown action type {kind!r}; use one of {', '.join(ACTIONS)}",
                }
            ]
        )
    try:
        data = cls.keep_secrets(data, normalized(previous) if previous else None)
    except SecretMissing as exc:
        raise ActionsInvalid([{"field": f"{loc}.{exc.path}", "message": str(exc)}]) from None
    try:
        action = cls.model_validate(data)
    except ValidationError as exc:
        raise ActionsInvalid(
            [
                {
                    "field": ".".join([loc, *(str(p) for p in err["loc"])]),
                    "message": err["msg"].removeprefix("Value error, "),
                }
                for err in exc.errors(include_url=False)
            ]
        ) from None
    errors = []
    for name, text in action.templates().items():
        try:
            validate_template(text, strict=strict)
        except ValueError as exc:
            errors.append({"field": f"{loc}.{name}", "message": f"{name!r} {exc}"})
    if errors:
        raise ActionsInvalid(errors)
    return action


def parse_actions(
    items: Any,
    *,
    loc: str,
    previous: list[dict[str, Any] | None] | None = None,
    strict: bool = False,
) -> list[Action]:
    """Validate a list of actions; `previous[i]` is the stored action item `i` replaces."""
    if not isinstance(items, list):
        raise ActionsInvalid([{"field": loc, "message": "must be a list of actions"}])
    previous = previous or []
    actions, errors = [], []
    for i, item in enumerate(items):
        try:
            before = previous[i] if i < len(previous) else None
            actions.append(parse_action(item, loc=f"{loc}.{i}", previous=before, strict=strict))
        except ActionsInvalid as exc:
            errors += exc.errors
    if errors:
        raise ActionsInvalid(errors)
    return actions


def stored_actions(
    actions: list[Action], previous: list[dict[str, Any] | None] | None = None
) -> list[dict[str, Any]]:
    """The definitions to store (secrets sealed), reusing unchanged sealed values."""
    previous = previous or []
    return [
        action.stored(normalized(previous[i]) if i < len(previous) and previous[i] else None)
        for i, action in enumerate(actions)
    ]
