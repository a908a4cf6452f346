"""What an automation does when it fires.

- `base`: `Action`, `RunContext`, `Outcome`, `ActionFailed` / `ActionRetry`, secret settings;
- `kinds`: the action kinds; `presets`: Slack, Teams, PagerDuty and Discord notifications;
- `registry`: `ACTIONS` by type and `parse_action(s)`;
- `outbound`: the guarded HTTP client (no private addresses, bounded redirects, size and time);
- `deliveries`: every attempt as a `Delivery` row (what was sent, what came back);
- `links`: the page a notification links to (the event, or the automation);
- `context`: Prefect's template context, rendered in the one sandbox (`events.templating`);
- `runner`: `perform` one action run, recording every attempt and emitting its events.
"""

from automations.actions.base import (
    ActionFailed,
    ActionRetry,
    Outcome,
    RetrySchedule,
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
    SendEmail,
)
from automations.actions.presets import NotifyDiscord, NotifyPagerDuty, NotifySlack, NotifyTeams
from automations.actions.registry import (
    ACTIONS,
    ActionsInvalid,
    normalized,
    parse_action,
    parse_actions,
    stored_actions,
)
from automations.actions.runner import claim, perform, send_test

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
    "NotifyDiscord",
    "NotifyPagerDuty",
    "NotifySlack",
    "NotifyTeams",
    "Outcome",
    "PauseAutomation",
    "ResumeAutomation",
    "RetrySchedule",
    "RunContext",
    "SendEmail",
    "TemplateEvent",
    "TemplateResource",
    "claim",
    "maybe_template",
    "normalized",
    "parse_action",
    "parse_actions",
    "perform",
    "render",
    "send_test",
    "stored_actions",
    "template_context",
    "validate_template",
]
