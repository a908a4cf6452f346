"""The registry of action kinds by `type`, and the validation of an action definition."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from automations.actions.base import Action
from automations.actions.context import validate_template
from automations.actions.kinds import (
    CallWebhook,
    DoNothing,
    EmitEvent,
    PauseAutomation,
    ResumeAutomation,
    SendNotification,
)

ACTIONS: dict[str, type[Action]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        DoNothing,
        CallWebhook,
        SendNotification,
        EmitEvent,
        PauseAutomation,
        ResumeAutomation,
    )
}


class ActionsInvalid(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def parse_action(data: Any, *, loc: str = "action") -> Action:
    """Validate one action (and its templates); raise `ActionsInvalid` with field errors."""
    if not isinstance(data, dict):
        raise ActionsInvalid([{"field": loc, "message": "must be a JSON object"}])
    kind = data.get("type")
    if kind == "call-webhook" and "block_document_id" in data and "url" not in data:
        raise ActionsInvalid(
            [
                {
                    "field": f"{loc}.block_document_id",
                    "message": (
                        "eventsite has no webhook blocks: give call-webhook a `url` "
                        "(and optionally `method`, `headers`, `payload`) instead of "
                        "Prefect's `block_document_id`"
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
            validate_template(text)
        except ValueError as exc:
            errors.append({"field": f"{loc}.{name}", "message": f"{name!r} {exc}"})
    if errors:
        raise ActionsInvalid(errors)
    return action


def parse_actions(items: Any, *, loc: str) -> list[Action]:
    if not isinstance(items, list):
        raise ActionsInvalid([{"field": loc, "message": "must be a list of actions"}])
    actions, errors = [], []
    for i, item in enumerate(items):
        try:
            actions.append(parse_action(item, loc=f"{loc}.{i}"))
        except ActionsInvalid as exc:
            errors += exc.errors
    if errors:
        raise ActionsInvalid(errors)
    return actions
