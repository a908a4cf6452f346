"""What an automation does when it fires.

- `base`: `Action`, `RunContext`, `Outcome`, `ActionFailed` / `ActionRetry`;
- `kinds`: the action kinds; `registry`: `ACTIONS` by type and `parse_action(s)`;
- `context`: Prefect's template context, rendered in the one sandbox (`events.templating`);
- `runner`: `perform` one action run, recording every attempt and emitting its events.
"""

from automations.actions.base import (
    ActionFailed,
    ActionRetry,
    Outcome,
    RunContext,
)
from automations.actions.context import (
    LabelDiver,
    TemplateEvent,
    TemplateResource,
    maybe_template,
    render,
    template_context,
    validate_template,
)
from automations.actions.kinds import (
    AutomationCommand,
    CallWebhook,
    DoNothing,
    EmitEvent,
    PauseAutomation,
    ResumeAutomation,
    SendNotification,
)
from automations.actions.registry import ACTIONS, ActionsInvalid, parse_action, parse_actions
from automations.actions.runner import backoff, claim, perform, send_test

__all__ = [
    "ACTIONS",
    "ActionFailed",
    "ActionRetry",
    "ActionsInvalid",
    "AutomationCommand",
    "CallWebhook",
    "DoNothing",
    "EmitEvent",
    "LabelDiver",
    "Outcome",
    "PauseAutomation",
    "ResumeAutomation",
    "RunContext",
    "SendNotification",
    "TemplateEvent",
    "TemplateResource",
    "backoff",
    "claim",
    "maybe_template",
    "parse_action",
    "parse_actions",
    "perform",
    "render",
    "send_test",
    "template_context",
    "validate_template",
]
