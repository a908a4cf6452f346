"""The webhooks REST API under /api/webhooks, in Prefect Cloud's shape (reference §6.1)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator
from rest_framework.views import APIView

from events import templating
from events.accounts.roles import Capability, allows
from events.api.bodies import error_response, json_response, parse_body
from events.api.shapes import ErrorBody
from events.schema import MAX_CLIENT_INT
from events.webhooks import changes
from events.webhooks.changes import STARTERS
from events.webhooks.models import Webhook
from eventsite.field_secrets import REDACTED
from eventsite.links import public_url

MAX_LIMIT = 200
MAX_GRACE_SECONDS = 30 * 86400
Kind = Webhook.Kind
Verification = Webhook.Verification


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _check_template(value: str | None) -> str | None:
    if value is not None:
        try:
            templating.check_template(value)
        except templating.TemplateInvalid as exc:
            raise ValueError(str(exc)) from None
    return value


class _Verification(_Strict):
    """How requests prove themselves (`events.webhooks.verify`); the secret is write-only."""

    strict: bool | None = None
    verification: Verification | None = None
    verification_secret: str | None = Field(default=None, max_length=1000)
    signature_header: str | None = Field(default=None, max_length=100)
    signature_algorithm: Webhook.Algorithm | None = None
    signature_encoding: Webhook.Encoding | None = None
    signature_prefix: str | None = Field(default=None, max_length=50)
    signature_tolerance: int | None = Field(default=None, ge=1, le=86400)


class WebhookIn(_Verification):
    """Create / replace: `{"name", "description", "template"}` (the slug is never settable),
    plus eventsite's `strict` and verification settings."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    template: str = Field(min_length=1, max_length=templating.MAX_TEMPLATE_CHARS)
    kind: Kind | None = None
    enabled: bool | None = None

    _template = field_validator("template")(_check_template)


class WebhookPatch(_Verification):
    """Toggle (`{"enabled": bool}`), or change any field given."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    template: str | None = Field(
        default=None, min_length=1, max_length=templating.MAX_TEMPLATE_CHARS
    )
    kind: Kind | None = None
    enabled: bool | None = None

    _template = field_validator("template")(_check_template)


class WebhookOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    template: str
    kind: Kind
    enabled: bool
    slug: str | None = Field(description="Admins only (the webhook's credential); else null")
    url: str | None = Field(description="Admins only; else null")
    strict: bool
    verification: Verification
    verification_secret: str
    signature_header: str
    signature_algorithm: str
    signature_encoding: str
    signature_prefix: str
    signature_tolerance: int
    old_url_until: datetime | None
    created: datetime
    updated: datetime


class WebhookList(RootModel[list[WebhookOut]]):
    pass


class FilterIn(_Strict):
    offset: int = Field(default=0, ge=0, le=MAX_CLIENT_INT)
    limit: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)


def _out(request, webhook: Webhook) -> dict:
    # The slug is the webhook's credential: admins only (events/accounts/roles.py).
    admin = allows(request.user, Capability.ADMIN, request.auth)
    return {
        "id": str(webhook.id),
        "name": webhook.name,
        "description": webhook.description,
        "template": webhook.template,
        "kind": webhook.kind,
        "enabled": webhook.enabled,
        "slug": webhook.slug if admin else None,
        "url": (
            public_url(reverse("webhook-receive", args=[webhook.slug]), request=request)
            if admin
            else None
        ),
        "strict": webhook.strict,
        "verification": webhook.verification,
        # Write-only: whether one is set, never what it is.
        "verification_secret": REDACTED if webhook.verification_secret else "",
        "signature_header": webhook.signature_header,
        "signature_algorithm": webhook.signature_algorithm,
        "signature_encoding": webhook.signature_encoding,
        "signature_prefix": webhook.signature_prefix,
        "signature_tolerance": webhook.signature_tolerance,
        "old_url_until": (
            webhook.previous_slug_expires.isoformat() if webhook.old_url_active else None
        ),
        "created": webhook.created.isoformat(),
        "updated": webhook.updated.isoformat(),
    }


def _kind_of(template: str) -> str:
    for kind, starter in STARTERS.items():
        if template.strip() == starter:
            return kind
    is_static = "{{" not in template and "{%" not in template
    return Kind.STATIC if is_static else Kind.DYNAMIC


def _given(body: BaseModel, *, replace: bool = False) -> dict:
    """The fields to save: those the client sent, or (`replace`) every field with its default.

    A `verification_secret` of REDACTED (as read) keeps the stored one.
    """
    fields = body.model_dump(exclude_unset=not replace, exclude_none=True)
    if fields.get("verification_secret") == REDACTED:
        fields.pop("verification_secret")
    if fields.get("verification") == Verification.NONE:
        fields["verification_secret"] = ""
    return fields


def _unverifiable(webhook: Webhook | None, fields: dict, body) -> HttpResponse | None:
    """A 422 when a verification is asked for without the key it needs."""
    verification = fields.get("verification", webhook.verification if webhook else "none")
    secret = fields.get("verification_secret", webhook.verification_secret if webhook else "")
    if verification != Verification.NONE and not secret:
        return error_response(
            422,
            "Invalid webhook.",
            [{"field": "verification_secret", "message": f"{verification} needs a key"}],
            request_body=body,
        )
    return None


INVALID = OpenApiResponse(
    ErrorBody, description="Invalid fields: `{detail, errors: [{field, message}]}`"
)
NOT_FOUND = OpenApiResponse(ErrorBody, description="No such webhook")


class Webhooks(APIView):
    @extend_schema(
        request=WebhookIn,
        responses={201: WebhookOut, 422: INVALID},
        summary="Create a webhook (the server assigns its random slug)",
    )
    def post(self, request):
        body, error = parse_body(request, WebhookIn, detail="Invalid webhook.")
        if error:
            return error
        fields = _given(body, replace=True)
        fields.setdefault("kind", _kind_of(body.template))
        if error := _unverifiable(None, fields, body.model_dump(mode="json")):
            return error
        webhook = changes.create(user=request.user, request=request, **fields)
        return json_response(_out(request, webhook), status=201)


class WebhooksFilter(APIView):
    capabilities = {"POST": Capability.READ}

    @extend_schema(request=FilterIn, responses={200: WebhookList, 422: INVALID}, summary="List")
    def post(self, request):
        body, error = parse_body(request, FilterIn, detail="Invalid filter.")
        if error:
            return error
        hooks = Webhook.objects.order_by("created", "id")[body.offset : body.offset + body.limit]
        return json_response([_out(request, w) for w in hooks])


class WebhookDetail(APIView):
    @extend_schema(responses={200: WebhookOut, 404: NOT_FOUND}, summary="Read one webhook")
    def get(self, request, pk):
        return json_response(_out(request, get_object_or_404(Webhook, pk=pk)))

    @extend_schema(
        request=WebhookIn,
        responses={204: None, 404: NOT_FOUND, 422: INVALID},
        summary="Replace name/description/template",
    )
    def put(self, request, pk):
        webhook = get_object_or_404(Webhook, pk=pk)
        body, error = parse_body(request, WebhookIn, detail="Invalid webhook.")
        if error:
            return error
        fields = _given(body, replace=True)  # settings left out (None) keep their values
        if error := _unverifiable(webhook, fields, body.model_dump(mode="json")):
            return error
        changes.update(webhook, request=request, **fields)
        return HttpResponse(status=204)

    @extend_schema(
        request=WebhookPatch,
        responses={204: None, 404: NOT_FOUND, 422: INVALID},
        summary="Toggle or change fields",
    )
    def patch(self, request, pk):
        webhook = get_object_or_404(Webhook, pk=pk)
        body, error = parse_body(request, WebhookPatch, detail="Invalid webhook.")
        if error:
            return error
        fields = _given(body)
        if error := _unverifiable(webhook, fields, body.model_dump(mode="json")):
            return error
        changes.update(webhook, request=request, **fields)
        return HttpResponse(status=204)

    @extend_schema(responses={204: None, 404: NOT_FOUND}, summary="Delete a webhook")
    def delete(self, request, pk):
        changes.delete(get_object_or_404(Webhook, pk=pk), request=request)
        return HttpResponse(status=204)


class RotateIn(_Strict):
    """Optional: how long the old URL keeps working (default: not at all, as in Prefect)."""

    grace_seconds: int = Field(default=0, ge=0, le=MAX_GRACE_SECONDS)


class WebhookRotate(APIView):
    capabilities = {"POST": Capability.ADMIN}

    @extend_schema(
        request=RotateIn, responses={200: WebhookOut, 404: NOT_FOUND}, summary="Issue a new slug"
    )
    def post(self, request, pk):
        webhook = get_object_or_404(Webhook, pk=pk)
        body, error = parse_body(request, RotateIn, detail="Invalid rotation.")
        if error:
            return error
        grace = timedelta(seconds=body.grace_seconds)
        webhook = changes.rotate(webhook, request=request, grace=grace)
        return json_response(_out(request, webhook))
