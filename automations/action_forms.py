"""The action part of the automation form: one small form per kind, chosen by `type`.

Each kind (call a webhook, email, the Slack / Teams / PagerDuty / Discord presets, emit an
event, pause or resume an automation) has a form with its own fields; `ActionForm` holds the
type and one of each, and validates only the chosen one. Secret settings are `SecretField`s:
write-only, "•••• set" when stored, and left empty they keep the stored value. The definition a
form builds is validated by `automations.validation`, like the API's.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms

from automations.actions import ACTIONS, ActionsInvalid, RetrySchedule, normalized, parse_action
from automations.actions import presets as preset_kinds
from eventsite.field_secrets import REDACTED
from eventsite.forms import SecretField

TEMPLATE_HELP = "Jinja template with Prefect's context: event, automation, labels, firing."


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


class KindForm(forms.Form):
    """The fields of one action kind; `action_data` is its part of the action definition."""

    kinds: ClassVar[tuple[str, ...]] = ()
    key: ClassVar[str] = ""
    intro: ClassVar[str] = ""

    def __init__(self, *args, stored: dict[str, Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        stored = stored or {}
        for name, field in self.fields.items():
            if isinstance(field, SecretField):
                field.set_stored(stored.get(name))

    @classmethod
    def initial_for(cls, action: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v
            for k, v in action.items()
            if k in cls.base_fields and not isinstance(cls.base_fields[k], SecretField)
        }

    def action_data(self) -> dict[str, Any]:
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


RETRY_FIELDS = {
    "retry_attempts": "attempts",
    "retry_first_delay": "first_delay",
    "retry_max_delay": "max_delay",
    "retry_jitter": "jitter",
}


class RetryingKindForm(KindForm):
    """A kind that calls a service, so fails transiently: its retry schedule (blank: default).

    Every field of the schedule is here, so saving the form keeps what the API set; the help
    texts say the defaults this deployment uses (its settings), not numbers written here.
    """

    retry_attempts = forms.IntegerField(label="Attempts", required=False, min_value=1, max_value=30)
    retry_first_delay = forms.FloatField(
        label="First retry after (seconds)", required=False, min_value=1, max_value=86_400
    )
    retry_max_delay = forms.FloatField(
        label="Longest wait (seconds)", required=False, min_value=1, max_value=86_400
    )
    retry_jitter = forms.FloatField(
        label="Jitter (fraction)", required=False, min_value=0, max_value=0.5
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        default = RetrySchedule()
        minutes = default.span().total_seconds() / 60
        help_texts = {
            "retry_attempts": f"In all, the first included. Blank: {default.attempts}.",
            "retry_first_delay": f"Each wait doubles. Blank: {default.first_delay:g}.",
            "retry_max_delay": (
                f"Blank: {default.max_delay:g}. "
                f"The defaults keep trying for about {minutes:.0f} minutes."
            ),
            "retry_jitter": (
                "Each wait varies randomly by up to this fraction, so that many failing runs "
                f"do not all come back at once. Blank: {default.jitter:g}."
            ),
        }
        for name, text in help_texts.items():
            self.fields[name].help_text = text

    @classmethod
    def initial_for(cls, action: dict[str, Any]) -> dict[str, Any]:
        initial = super().initial_for(action)
        retry = action.get("retry") or {}
        initial.update({name: retry[key] for name, key in RETRY_FIELDS.items() if key in retry})
        return initial

    def retry_data(self) -> dict[str, Any] | None:
        data = self.cleaned_data
        retry = {
            key: data[name] for name, key in RETRY_FIELDS.items() if data.get(name) is not None
        }
        return retry or None


class WebhookForm(RetryingKindForm):
    kinds = ("call-webhook-url",)
    key = "webhook"
    url = forms.CharField(label="URL", help_text="http(s); may be a template.")
    method = forms.ChoiceField(
        choices=[(m, m) for m in ("POST", "PUT", "PATCH", "GET", "DELETE")], initial="POST"
    )
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "autocomplete": "off"}),
        help_text=(
            f"One Name: value per line. Values are write-only: a stored one shows as {REDACTED}; "
            "leave it to keep the value, or type a new one."
        ),
    )
    payload = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "json-editor"}),
        help_text='Jinja template, e.g. {"id": "{{ event.id }}"}.',
    )
    timeout = forms.FloatField(required=False, initial=10, min_value=0.1, max_value=60)

    @classmethod
    def initial_for(cls, action: dict[str, Any]) -> dict[str, Any]:
        initial = super().initial_for(action)
        initial["headers"] = "\n".join(f"{k}: {REDACTED}" for k in action.get("headers") or {})
        return initial

    def clean_headers(self) -> dict[str, str]:
        headers = {}
        for line in (self.cleaned_data.get("headers") or "").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise forms.ValidationError("Write one Name: value per line.")
            headers[name.strip()] = value.strip()
        return headers

    def action_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "url": data["url"],
            "method": data.get("method") or "POST",
            "headers": data.get("headers") or {},
            "payload": data.get("payload") or "",
            "timeout": data.get("timeout") or 10,
        }


class EmailForm(RetryingKindForm):
    kinds = ("send-email",)
    key = "email"
    to = forms.CharField(label="Recipients", help_text="Comma-separated email addresses.")
    subject = forms.CharField(initial="{{ automation.name }}: {{ event.event }}")
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        initial=(
            "{{ automation.name }} fired.\n\n"
            + preset_kinds.DEFAULT_MESSAGE
            + "{% if event %} at {{ event.occurred }}{% endif %}."
        ),
        help_text=TEMPLATE_HELP,
    )

    @classmethod
    def initial_for(cls, action: dict[str, Any]) -> dict[str, Any]:
        initial = super().initial_for(action)
        initial["to"] = ", ".join(action.get("to") or [])
        return initial

    link = forms.BooleanField(
        required=False,
        initial=True,
        label="Add a link to the event",
        help_text="After the body: the event's page (or the automation's, without one).",
    )

    def action_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "to": _lines(data["to"]),
            "subject": data["subject"],
            "body": data["body"],
            "link": bool(data.get("link")),
        }


class ChatForm(RetryingKindForm):
    webhook_url = SecretField(
        label="Webhook URL", help_text="Write-only: the URL is the credential."
    )
    title = forms.CharField(initial=preset_kinds.DEFAULT_TITLE, help_text=TEMPLATE_HELP)
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        initial=preset_kinds.DEFAULT_MESSAGE,
        help_text="Plain text; a button links to the event (or to the automation without one).",
    )


class SlackForm(ChatForm):
    kinds = ("notify-slack",)
    key = "slack"
    field_order = ["webhook_url", "title", "message"]
    webhook_url = SecretField(
        label="Slack incoming webhook URL",
        help_text="https://hooks.slack.com/services/… Write-only: the URL is the credential.",
    )


class TeamsForm(ChatForm):
    kinds = ("notify-teams",)
    key = "teams"
    field_order = ["webhook_url", "title", "message"]
    webhook_url = SecretField(
        label="Teams workflow webhook URL",
        help_text=(
            "From the Teams workflow “Post to a channel when a webhook request is received”. "
            "Write-only: the URL is the credential."
        ),
    )


class DiscordForm(ChatForm):
    kinds = ("notify-discord",)
    key = "discord"
    field_order = ["webhook_url", "title", "message", "username"]
    webhook_url = SecretField(
        label="Discord webhook URL",
        help_text="https://discord.com/api/webhooks/… Write-only: the URL is the credential.",
    )
    username = forms.CharField(required=False, max_length=80, help_text="Optional sender name.")


class PagerDutyForm(RetryingKindForm):
    kinds = ("notify-pagerduty",)
    key = "pagerduty"
    routing_key = SecretField(
        label="Integration (routing) key",
        help_text="Events API v2 integration key of the service. Write-only.",
    )
    severity = forms.ChoiceField(
        choices=[(s, s.capitalize()) for s in ("critical", "error", "warning", "info")],
        initial="error",
    )
    summary = forms.CharField(
        initial=preset_kinds.DEFAULT_SUMMARY,
        help_text="The incident title. " + TEMPLATE_HELP,
    )
    source = forms.CharField(initial=preset_kinds.DEFAULT_SOURCE, help_text="Where it happened.")
    api_url = forms.CharField(
        label="Events API URL",
        initial=preset_kinds.PAGERDUTY_URL,
        help_text="events.eu.pagerduty.com for PagerDuty's EU service.",
    )
    resolve = forms.BooleanField(
        required=False,
        initial=True,
        label="Resolve the incident when the automation resolves",
        help_text="Adds the same action to the actions on resolve.",
    )
    intro = (
        "Triggers an incident when the automation fires and resolves it when the automation "
        "resolves; one incident per for-each key."
    )

    def action_data(self) -> dict[str, Any]:
        data = super().action_data()
        data.pop("resolve", None)
        return data


class EmitEventForm(KindForm):
    kinds = ("emit-event",)
    key = "emit"
    event = forms.CharField(
        label="Event (JSON)",
        widget=forms.Textarea(attrs={"rows": 4, "class": "json-editor"}),
        help_text='{"event": "…", "resource": {"prefect.resource.id": "…"}, "payload": {…}}',
    )

    @classmethod
    def initial_for(cls, action: dict[str, Any]) -> dict[str, Any]:
        return {"event": json.dumps(action.get("event") or {}, indent=2)}

    def clean_event(self) -> Any:
        try:
            return json.loads(self.cleaned_data.get("event") or "")
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def action_data(self) -> dict[str, Any]:
        return {"event": self.cleaned_data["event"]}


class AutomationCommandForm(KindForm):
    kinds = ("pause-automation", "resume-automation")
    key = "automation"
    automation_id = forms.CharField(
        required=False,
        label="Automation id",
        help_text="Empty: the automation named by the triggering event.",
    )

    def action_data(self) -> dict[str, Any]:
        if self.cleaned_data.get("automation_id"):
            return {"source": "selected", "automation_id": self.cleaned_data["automation_id"]}
        return {"source": "inferred"}


KIND_FORMS: tuple[type[KindForm], ...] = (
    WebhookForm,
    EmailForm,
    SlackForm,
    TeamsForm,
    PagerDutyForm,
    DiscordForm,
    EmitEventForm,
    AutomationCommandForm,
)
FORM_OF_KIND = {kind: cls for cls in KIND_FORMS for kind in cls.kinds}


class ActionForm(forms.Form):
    """One action: its type, and the form of each kind (only the chosen one is validated)."""

    type = forms.ChoiceField(
        choices=[("", "— choose —")] + [(k, v.label) for k, v in ACTIONS.items()], required=False
    )
    # PagerDuty has its own box (it resolves the incident instead of running again).
    on_resolve = forms.BooleanField(
        required=False,
        label="Also run it when the automation resolves",
        help_text="Proactive triggers resolve when the expected events come back; the action "
        "then runs with the prefect.automation.resolved event as its event.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["on_resolve"].initial = bool(self.initial.get("resolves"))
        stored = self.initial.get("stored") or None
        self.stored = normalized(stored) if stored else None
        self.kind_forms: dict[str, KindForm] = {}
        for cls in KIND_FORMS:
            mine = self.stored if self.stored and self.stored.get("type") in cls.kinds else None
            initial = cls.initial_for(mine) if mine else {}
            if cls is PagerDutyForm and mine:
                initial["resolve"] = bool(self.initial.get("resolves"))
            self.kind_forms[cls.key] = cls(
                self.data if self.is_bound else None,
                prefix=f"{self.prefix}-{cls.key}" if self.prefix else cls.key,
                initial=initial or None,
                stored=mine,
            )

    def sections(self) -> list[tuple[str, KindForm]]:
        """(the kinds it serves, space-separated; the form) for the template."""
        return [(" ".join(cls.kinds), self.kind_forms[cls.key]) for cls in KIND_FORMS]

    def chosen(self) -> KindForm | None:
        kind = (self.cleaned_data if hasattr(self, "cleaned_data") else {}).get("type")
        cls = FORM_OF_KIND.get(kind or "")
        return self.kind_forms[cls.key] if cls else None

    def clean(self):
        cleaned = super().clean()
        form = self.chosen()
        if form is not None and not cleaned.get("DELETE") and not form.is_valid():
            raise forms.ValidationError("Check the fields of this action below.")
        return cleaned

    def action_data(self) -> dict[str, Any]:
        kind = self.cleaned_data["type"]
        form = self.chosen()
        data = {"type": kind, **(form.action_data() if form else {})}
        for name in RETRY_FIELDS:
            data.pop(name, None)
        if isinstance(form, RetryingKindForm) and (retry := form.retry_data()):
            data["retry"] = retry
        return data

    def resolves(self) -> bool:
        """An action to run on resolve too: a PagerDuty action that resolves its incident, or
        any other with "also run it when the automation resolves" (see `resolving`)."""
        form = self.chosen()
        if isinstance(form, PagerDutyForm):
            return bool(form.cleaned_data.get("resolve"))
        return form is not None and bool(self.cleaned_data.get("on_resolve"))

    @property
    def resolve_kinds(self) -> str:
        """The kinds the generic "on resolve" box serves (space-separated, for the template)."""
        return " ".join(k for k in ACTIONS if k not in PagerDutyForm.kinds)

    def add_field_error(self, field: str | None, message: str) -> None:
        """Show a validation error next to the field it concerns, in the chosen kind's form."""
        form = self.chosen()
        if field == "retry" and isinstance(form, RetryingKindForm):
            field = "retry_attempts"  # the schedule's first field stands for it
        if form is not None and field in form.fields:
            form.add_error(field, message)
        else:
            self.add_error(None, f"{field}: {message}" if field else message)

    @classmethod
    def initial_for(cls, action: dict[str, Any], *, resolves: bool = False) -> dict[str, Any]:
        return {"type": normalized(action).get("type", ""), "stored": action, "resolves": resolves}


def _resolve_key(action: dict[str, Any]) -> tuple[str, ...]:
    """What pairs an action with its copy on resolve: a PagerDuty service (routing key and API),
    or for any other kind the action itself."""
    if normalized(action).get("type") == "notify-pagerduty":
        try:
            parsed = parse_action(action)
        except ActionsInvalid:
            pass
        else:
            return ("pagerduty", parsed.routing_key, parsed.api_url)
    return ("same", json.dumps(action, sort_keys=True, default=str))


def is_resolved(action: dict[str, Any], actions_on_resolve: list[dict[str, Any]]) -> bool:
    """Does the automation run this action (or, for PagerDuty, resolve its service) on resolve?"""
    key = _resolve_key(action)
    return any(_resolve_key(a) == key for a in actions_on_resolve)


def resolving(
    actions: list[dict[str, Any]],
    resolves: list[bool],
    actions_on_resolve: list[dict[str, Any]],
    replaced: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The actions on resolve after a form save: each action with its "on resolve" box ticked
    is there once (as stored, sealed), and one the form no longer resolves is gone.

    The form manages the actions on resolve that pair with its actions (`actions`, and the
    `replaced` ones they replace); other actions on resolve (set through the API) are kept.
    """
    managed = {_resolve_key(a) for a in [*actions, *replaced]}
    kept = [a for a in actions_on_resolve if _resolve_key(a) not in managed]
    return kept + [dict(a) for a, wanted in zip(actions, resolves, strict=True) if wanted]


ActionFormSet = forms.formset_factory(ActionForm, extra=1, can_delete=True)
