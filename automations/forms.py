"""The automation form: friendly fields for an event trigger, a JSON editor for any trigger, and
an actions formset (`automations.action_forms`). Validation is `automations.validation` — the same
as the REST API's."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms

from automations.action_forms import ActionForm, ActionFormSet, resolving
from automations.triggers import EventTrigger, TriggerInvalid, parse_trigger
from automations.validation import AutomationInvalid, Definition, validate_definition

FRIENDLY_TRIGGER_FIELDS = {
    "match": "match_resource",
    "match_related": "related_role",
    "expect": "expect",
    "after": "after",
    "for_each": "for_each",
    "posture": "posture",
    "threshold": "threshold",
    "within": "within",
}


__all__ = ["ActionForm", "ActionFormSet", "AutomationForm"]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _patterns(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _label_lines(text: str, field: str) -> dict[str, Any]:
    """`label=pattern` per line; a label given twice gets both patterns (ORed)."""
    spec: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"Line {number}: write label=pattern.", code=field)
        spec.setdefault(key.strip(), []).append(value.strip())
    return {k: _patterns(v) for k, v in spec.items()}


def _label_text(spec: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    lines = []
    for key, patterns in spec.items():
        if key in skip:
            continue
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            lines.append(f"{key}={pattern}")
    return "\n".join(lines)


class AutomationForm(forms.Form):
    name = forms.CharField(max_length=500)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    tags = forms.CharField(required=False, help_text="Comma-separated.")
    enabled = forms.BooleanField(required=False, initial=True)
    allow_self_trigger = forms.BooleanField(
        required=False,
        label="Allow reacting to its own events",
        help_text="Off by default: an automation that reacts to its own prefect.automation.* events loops.",
    )
    trigger_mode = forms.ChoiceField(
        choices=[("event", "Event trigger (form)"), ("json", "Any trigger (JSON)")],
        initial="event",
        widget=forms.RadioSelect,
    )
    match_resource = forms.CharField(
        required=False,
        label="Resource id",
        help_text="Glob patterns (* ? !), comma-separated; empty matches any resource.",
    )
    match_labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Resource labels",
        help_text="One label=pattern per line.",
    )
    related_role = forms.CharField(required=False, label="Related resource role")
    related_resource = forms.CharField(required=False, label="Related resource id")
    related_labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Related resource labels",
        help_text="One label=pattern per line; role, id and these must hold on one related resource.",
    )
    expect = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Event names that count (globs), one per line; empty means any event.",
    )
    after = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
        help_text="Event names that open the window; empty means no gate.",
    )
    for_each = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
        label="For each",
        help_text="Labels that split evaluation (e.g. prefect.resource.id or related:flow:prefect.resource.id).",
    )
    posture = forms.ChoiceField(
        choices=[
            ("Reactive", "Reactive: when events happen"),
            ("Proactive", "Proactive: when they don't"),
        ],
        initial="Reactive",
    )
    threshold = forms.IntegerField(min_value=1, initial=1)
    within = forms.FloatField(
        min_value=0, initial=0, label="Within (seconds)", help_text="Proactive needs at least 10 s."
    )
    trigger_json = forms.CharField(
        required=False,
        label="Trigger JSON",
        widget=forms.Textarea(attrs={"rows": 14, "class": "json-editor", "spellcheck": "false"}),
    )

    def __init__(self, *args, automation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.automation = automation
        self.definition: Definition | None = None

    # --- building the trigger ------------------------------------------------------------------

    def trigger_data(self) -> Any:
        """The trigger JSON the fields describe (raises ValidationError for unreadable input)."""
        data = self.cleaned_data
        if data.get("trigger_mode") == "json":
            try:
                return json.loads(data.get("trigger_json") or "")
            except json.JSONDecodeError as exc:
                raise forms.ValidationError({"trigger_json": f"Not valid JSON: {exc}"}) from None
        match: dict[str, Any] = {}
        if resource := _lines(data.get("match_resource") or ""):
            match["prefect.resource.id"] = _patterns(resource)
        try:
            match.update(_label_lines(data.get("match_labels") or "", "match_labels"))
            related = _label_lines(data.get("related_labels") or "", "related_labels")
        except forms.ValidationError as exc:
            raise forms.ValidationError({exc.code: exc.messages}) from None
        if data.get("related_role"):
            related["prefect.resource.role"] = data["related_role"].strip()
        if resource := _lines(data.get("related_resource") or ""):
            related["prefect.resource.id"] = _patterns(resource)
        return {
            "type": "event",
            "match": match,
            "match_related": related,
            "after": _lines(data.get("after") or ""),
            "expect": _lines(data.get("expect") or ""),
            "for_each": _lines(data.get("for_each") or ""),
            "posture": data.get("posture") or "Reactive",
            "threshold": data.get("threshold") or 1,
            "within": data.get("within") or 0,
        }

    @classmethod
    def initial_for(cls, trigger: dict, **fields) -> dict[str, Any]:
        """Initial values showing a trigger in the friendly fields when it fits them."""
        initial: dict[str, Any] = {
            "trigger_json": json.dumps(trigger, indent=2),
            "trigger_mode": "json",
            **fields,
        }
        try:
            parsed = parse_trigger(trigger)
        except TriggerInvalid:
            return initial
        if not isinstance(parsed, EventTrigger) or isinstance(parsed.match_related, list):
            return initial
        match = dict(parsed.match)
        related = dict(parsed.match_related)
        resource = match.pop("prefect.resource.id", "")
        role = related.pop("prefect.resource.role", "")
        related_resource = related.pop("prefect.resource.id", "")
        if not isinstance(role, str):
            return initial
        join = lambda v: v if isinstance(v, str) else ", ".join(v)  # noqa: E731
        initial.update(
            trigger_mode="event",
            match_resource=join(resource),
            match_labels=_label_text(match),
            related_role=role,
            related_resource=join(related_resource),
            related_labels=_label_text(related),
            expect="\n".join(parsed.expect),
            after="\n".join(parsed.after),
            for_each="\n".join(parsed.for_each),
            posture=parsed.posture,
            threshold=parsed.threshold,
            within=parsed.within.total_seconds(),
        )
        return initial

    # --- validating the whole automation -------------------------------------------------------

    def validate_with(self, action_forms: ActionFormSet) -> Definition | None:
        """Validate this form and the actions together; errors land next to their fields."""
        if not self.is_valid() or not action_forms.is_valid():
            return None
        try:
            trigger = self.trigger_data()
        except forms.ValidationError as exc:
            self._add(exc.message_dict)
            return None
        actions, positions, previous, resolves = [], [], [], []
        for i, form in enumerate(action_forms.forms):
            if form.cleaned_data.get("DELETE") or not form.cleaned_data.get("type"):
                continue
            actions.append(form.action_data())
            positions.append(i)
            previous.append(form.stored)
            resolves.append(form.resolves())
        automation = self.automation
        data = {
            "name": self.cleaned_data["name"],
            "description": self.cleaned_data["description"],
            "enabled": self.cleaned_data["enabled"],
            "tags": _lines(self.cleaned_data["tags"]),
            "trigger": trigger,
            "actions": actions,
            "actions_on_trigger": automation.actions_on_trigger if automation else [],
            "actions_on_resolve": automation.actions_on_resolve if automation else [],
            "allow_self_trigger": self.cleaned_data["allow_self_trigger"],
        }
        try:
            self.definition = validate_definition(
                data,
                automation_id=automation.id if automation else self.new_id,
                regenerate_ids=automation is None,
                keep_trigger=automation.trigger if automation else None,
                previous={
                    "actions": previous,
                    "actions_on_trigger": automation.actions_on_trigger if automation else [],
                    "actions_on_resolve": automation.actions_on_resolve if automation else [],
                },
            )
        except AutomationInvalid as exc:
            self._place(exc.errors, action_forms, positions)
            return None
        self.definition.actions_on_resolve = resolving(
            self.definition.actions,
            resolves,
            self.definition.actions_on_resolve,
            replaced=automation.actions if automation else [],
        )
        return self.definition

    @property
    def new_id(self) -> uuid.UUID:
        if not hasattr(self, "_new_id"):
            self._new_id = uuid.uuid4()
        return self._new_id

    def _add(self, errors: dict[str, list[str]]) -> None:
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)

    def _place(self, errors: list[dict[str, str]], action_forms, positions: list[int]) -> None:
        json_mode = self.cleaned_data.get("trigger_mode") == "json"
        for error in errors:
            path = error["field"].split(".")
            message = error["message"]
            if path[0] == "trigger":
                key = path[1] if len(path) > 1 else ""
                if json_mode:
                    self.add_error("trigger_json", f"{error['field']}: {message}")
                elif key in FRIENDLY_TRIGGER_FIELDS:
                    self.add_error(FRIENDLY_TRIGGER_FIELDS[key], message)
                else:
                    self.add_error(None, f"Trigger: {message}")
            elif path[0] == "actions" and len(path) > 1 and path[1].isascii() and path[1].isdigit():
                form = action_forms.forms[positions[int(path[1])]]
                field = path[2].split("[")[0] if len(path) > 2 else None
                form.add_field_error(field, message)
            elif path[0] in self.fields:
                self.add_error(path[0], message)
            else:
                self.add_error(None, f"{error['field']}: {message}")
