"""Form fields shared by the apps: `SecretField`, a write-only field for a credential.

A secret that is stored shows as "•••• set" with its fingerprint and a "Replace" control; the
form never renders the value. Left empty, the field cleans to `REDACTED`, which the saving code
reads as "keep the stored value" (the same convention as the API).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.html import format_html

from eventsite import field_secrets
from eventsite.field_secrets import REDACTED


class SecretInput(forms.TextInput):
    """A text input that never shows its value; with a stored one, a "•••• set" line first."""

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__({"autocomplete": "off", "spellcheck": "false", **(attrs or {})})
        self.is_set = False
        self.fingerprint = ""

    def render(self, name, value, attrs=None, renderer=None):
        if not self.is_set:
            return super().render(name, None, attrs, renderer)
        attrs = {**(attrs or {}), "placeholder": "Type a new value to replace it"}
        field = super().render(name, None, attrs, renderer)
        return format_html(
            '<div class="secret-field"><span class="secret-state"><span class="badge ok">'
            '•••• set</span> <span class="mono muted" title="fingerprint">{}</span></span>'
            '<details class="secret-replace"><summary>Replace</summary>{}</details></div>',
            self.fingerprint,
            field,
        )

    def value_omitted_from_data(self, data, files, name):
        return False


class SecretField(forms.CharField):
    """Write-only: empty keeps the stored value (`REDACTED`), anything else replaces it."""

    widget = SecretInput

    def __init__(self, *, required: bool = True, **kwargs: Any):
        self.needed = required
        self.stored: str | None = None
        super().__init__(required=False, strip=True, **kwargs)

    def set_stored(self, value: Any) -> None:
        """Tell the field whether a value is stored (sealed or clear; it is never shown)."""
        self.stored = value or None
        self.widget.is_set = bool(value)
        self.widget.fingerprint = field_secrets.fingerprint(value) if value else ""

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if value:
            return value
        if self.stored:
            return REDACTED
        if self.needed:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return ""
