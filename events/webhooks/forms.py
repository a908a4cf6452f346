"""Forms of the webhook pages: the webhook itself and the test panel's sample request."""

from __future__ import annotations

import json

from django import forms

from events import templating
from events.webhooks.changes import STARTERS
from events.webhooks.models import Webhook
from events.webhooks.receive import Incoming

SAMPLE_METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE", "HEAD"]

SAMPLES: dict[str, dict[str, str]] = {
    Webhook.Kind.STATIC: {"headers": "", "body": ""},
    Webhook.Kind.DYNAMIC: {
        "headers": "Content-Type: application/json",
        "body": json.dumps(
            {"model": "recommendations", "friendly_name": "Recommendations", "run_id": "r-42"},
            indent=2,
        ),
    },
    Webhook.Kind.PASS_THROUGH: {
        "headers": "Content-Type: application/json",
        "body": json.dumps(
            {
                "event": "acme.order.shipped",
                "resource": {"prefect.resource.id": "acme.order.31"},
                "payload": {"carrier": "ups"},
            },
            indent=2,
        ),
    },
    Webhook.Kind.CLOUDEVENTS: {
        "headers": "Content-Type: application/cloudevents+json",
        "body": json.dumps(
            {
                "specversion": "1.0",
                "id": "A234-1234-1234",
                "source": "https://github.com/cloudevents/spec/pull",
                "subject": "123",
                "type": "com.github.pull_request.opened",
                "time": "2024-04-05T17:31:00Z",
                "data": {"title": "Add a feature"},
            },
            indent=2,
        ),
    },
}


class WebhookForm(forms.ModelForm):
    template = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"}),
        help_text=(
            "Jinja that renders one JSON event from <code>method</code>, <code>headers</code>, "
            "<code>body</code> and <code>query</code>. Needs at least <code>event</code> and "
            "<code>resource[&quot;prefect.resource.id&quot;]</code>; occurred, id, the webhook "
            "as a related resource and (if you give none) a payload are filled in. "
            "Left empty, the template of the chosen kind is used."
        ),
    )

    class Meta:
        model = Webhook
        fields = ["name", "description", "kind", "template"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "kind": forms.RadioSelect,
        }
        help_texts = {
            "kind": "A starting point for the template; the template decides.",
        }

    def clean_template(self) -> str:
        template = self.cleaned_data.get("template", "")
        if template.strip():
            try:
                templating.check_template(template)
            except templating.TemplateInvalid as exc:
                raise forms.ValidationError(str(exc)) from None
        return template

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("template") or "").strip() and cleaned.get("kind"):
            cleaned["template"] = STARTERS[cleaned["kind"]]
        return cleaned


def parse_header_lines(text: str) -> list[tuple[str, str]]:
    """`Name: value` lines, as a person types sample headers; raises ValidationError."""
    headers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise forms.ValidationError(f"Line {number}: write each header as “Name: value”.")
        headers.append((name.strip(), value.strip()))
    return headers


class SampleRequestForm(forms.Form):
    """A request to try the template against, in the test panel."""

    template = forms.CharField(required=False, widget=forms.HiddenInput)
    sample_method = forms.ChoiceField(
        label="Method", choices=[(m, m) for m in SAMPLE_METHODS], initial="POST"
    )
    sample_query = forms.CharField(
        label="Query string", required=False, help_text="For example a=1&b=two"
    )
    sample_headers = forms.CharField(
        label="Headers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "code"}),
        initial=SAMPLES[Webhook.Kind.DYNAMIC]["headers"],
        help_text="One “Name: value” per line.",
    )
    sample_body = forms.CharField(
        label="Body",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "code"}),
        initial=SAMPLES[Webhook.Kind.DYNAMIC]["body"],
    )

    def clean_sample_headers(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.cleaned_data.get("sample_headers", ""))

    def incoming(self, path: str) -> Incoming:
        data = self.cleaned_data
        return Incoming.build(
            method=data["sample_method"],
            path=path,
            query=data.get("sample_query", "").lstrip("?"),
            headers=data["sample_headers"],
            body=data.get("sample_body", "").encode(),
        )
