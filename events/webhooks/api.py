"""The webhooks REST API under /api/webhooks, in Prefect Cloud's shape (reference §6.1)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator
from rest_framework.views import APIView

from events import templating
from events.api.bodies import json_response, parse_body
from events.api.shapes import ErrorBody
from events.webhooks import changes
from events.webhooks.changes import STARTERS
from events.webhooks.models import Webhook
from eventsite.links import public_url

MAX_LIMIT = 200
Kind = Webhook.Kind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _check_template(value: str | None) -> str | None:
    if value is not None:
        try:
            templating.check_template(value)
        except templating.TemplateInvalid as exc:
            raise ValueError(str(exc)) from None
    return value


class WebhookIn(_Strict):
    """Create / replace: `{"name", "description", "template"}` (the slug is never settable)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    template: str = Field(min_length=1, max_length=templating.MAX_TEMPLATE_CHARS)
    kind: Kind | None = None
    enabled: bool | None = None

    _template = field_validator("template")(_check_template)


class WebhookPatch(_Strict):
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
    slug: str
    url: str
    created: datetime
    updated: datetime


class WebhookList(RootModel[list[WebhookOut]]):
    pass


class FilterIn(_Strict):
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    limit: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)


def _out(request, webhook: Webhook) -> dict:
    return {
        "id": str(webhook.id),
        "name": webhook.name,
        "description": webhook.description,
        "template": webhook.template,
        "kind": webhook.kind,
        "enabled": webhook.enabled,
        "slug": webhook.slug,
        "url": public_url(reverse("webhook-receive", args=[webhook.slug]), request=request),
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
    """The fields to save: those the client sent, or (`replace`) every field with its default."""
    return body.model_dump(exclude_unset=not replace, exclude_none=True)


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
        webhook = changes.create(user=request.user, request=request, **fields)
        return json_response(_out(request, webhook), status=201)


class WebhooksFilter(APIView):
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
        changes.update(webhook, request=request, **_given(body, replace=True))
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
        changes.update(webhook, request=request, **_given(body))
        return HttpResponse(status=204)

    @extend_schema(responses={204: None, 404: NOT_FOUND}, summary="Delete a webhook")
    def delete(self, request, pk):
        changes.delete(get_object_or_404(Webhook, pk=pk), request=request)
        return HttpResponse(status=204)


class WebhookRotate(APIView):
    @extend_schema(
        request=None, responses={200: WebhookOut, 404: NOT_FOUND}, summary="Issue a new slug"
    )
    def post(self, request, pk):
        webhook = changes.rotate(get_object_or_404(Webhook, pk=pk), request=request)
        return json_response(_out(request, webhook))
