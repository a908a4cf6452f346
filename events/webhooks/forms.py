"""Forms of the webhook pages: the webhook itself and the test panel's sample request."""

from __future__ import annotations

import json

from django import forms

from events import templating
from events.webhooks.changes import STARTERS
from events.webhooks.incoming import Incoming
from events.webhooks.models import Webhook
from eventsite.field_secrets import REDACTED
from eventsite.forms import SecretField

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

    verification_secret = SecretField(
        required=False,
        label="Verification key",
        help_text=(
            "The bearer token, or the signing secret (GitHub's webhook secret, Stripe's whsec_…). "
            "Write-only."
        ),
    )

    class Meta:
        model = Webhook
        fields = [
            "name",
            "description",
            "kind",
            "template",
            "strict",
            "verification",
            "verification_secret",
            "signature_header",
            "signature_algorithm",
            "signature_encoding",
            "signature_prefix",
            "signature_tolerance",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "kind": forms.RadioSelect,
        }
        labels = {
            "strict": "Strict: undefined variables are errors",
            "verification": "Verify requests",
            "signature_header": "Signature header",
            "signature_algorithm": "HMAC algorithm",
            "signature_encoding": "Signature encoding",
            "signature_prefix": "Signature prefix",
            "signature_tolerance": "Timestamp tolerance (seconds)",
        }
        help_texts = {
            "kind": "A starting point for the template; the template decides.",
            "strict": (
                "A variable the request does not have (say <code>body.status</code>) answers 400 "
                "instead of rendering as an empty string and storing a half-empty event."
            ),
            "verification": (
                "A request that fails the check is answered 401, logged below, and stores no event."
            ),
            "signature_header": "For an HMAC signature in a header of your choice.",
            "signature_prefix": "Text before the signature, e.g. <code>sha256=</code>.",
            "signature_tolerance": "Stripe signatures older than this are refused (replays too).",
        }

    # Only shown when they apply (see the template's script); without JavaScript all show.
    HMAC_FIELDS = (
        "signature_header",
        "signature_algorithm",
        "signature_encoding",
        "signature_prefix",
    )

    # Left out of a post (a script, an older page), these keep their defaults.
    OPTIONAL = (
        "verification",
        "signature_header",
        "signature_algorithm",
        "signature_encoding",
        "signature_prefix",
        "signature_tolerance",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["verification_secret"].set_stored(
            self.instance.verification_secret if self.instance.pk else None
        )
        for name in self.OPTIONAL:
            self.fields[name].required = False

    def saved_fields(self) -> dict:
        """The fields to save; an untouched verification key keeps its stored value."""
        fields = {name: self.cleaned_data[name] for name in self.Meta.fields}
        if fields["verification_secret"] == REDACTED:
            fields.pop("verification_secret")
        if fields["verification"] == Webhook.Verification.NONE:
            fields["verification_secret"] = ""
        return fields

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
        for name in self.OPTIONAL:
            if cleaned.get(name) in (None, "") and name not in self.errors:
                cleaned[name] = getattr(self.instance, name)
        verification = cleaned.get("verification")
        if verification and verification != Webhook.Verification.NONE:
            if not cleaned.get("verification_secret"):
                self.add_error("verification_secret", "Give the key this check needs.")
            if (
                verification == Webhook.Verification.HMAC
                and not (cleaned.get("signature_header") or "").strip()
            ):
                self.add_error("signature_header", "Name the header that carries the signature.")
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
    strict = forms.BooleanField(required=False, widget=forms.HiddenInput)
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


def sample_initial(row) -> dict[str, str]:
    """A logged request (`WebhookRequest`) as the test panel's sample request."""
    return {
        "sample_method": row.method if row.method in SAMPLE_METHODS else "POST",
        "sample_query": row.query,
        "sample_headers": "\n".join(f"{name}: {value}" for name, value in row.headers.items()),
        "sample_body": row.body_text(),
    }
