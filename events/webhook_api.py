"""The webhooks REST API under /api/webhooks, in Prefect Cloud's shape (reference §6.1)."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.views import APIView

from events import templating, webhook_changes
from events.api import error_response, json_response
from events.models import Webhook
from events.webhook_changes import STARTERS


def _check_template(value: str) -> str:
    try:
        templating.check_template(value)
    except templating.TemplateInvalid as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value


class WebhookIn(serializers.Serializer):
    """Create / replace: `{"name", "description", "template"}` (the slug is never settable)."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    template = serializers.CharField(validators=[_check_template])
    kind = serializers.ChoiceField(choices=Webhook.Kind.choices, required=False)
    enabled = serializers.BooleanField(required=False)


class WebhookPatch(serializers.Serializer):
    """Toggle (`{"enabled": bool}`), or change any field given."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    template = serializers.CharField(required=False, validators=[_check_template])
    kind = serializers.ChoiceField(choices=Webhook.Kind.choices, required=False)
    enabled = serializers.BooleanField(required=False)


class WebhookOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    template = serializers.CharField()
    kind = serializers.CharField()
    enabled = serializers.BooleanField()
    slug = serializers.CharField()
    url = serializers.CharField()
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()


class FilterIn(serializers.Serializer):
    offset = serializers.IntegerField(min_value=0, required=False, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=200, required=False, default=200)


def _out(request, webhook: Webhook) -> dict:
    return {
        "id": str(webhook.id),
        "name": webhook.name,
        "description": webhook.description,
        "template": webhook.template,
        "kind": webhook.kind,
        "enabled": webhook.enabled,
        "slug": webhook.slug,
        "url": request.build_absolute_uri(reverse("webhook-receive", args=[webhook.slug])),
        "created": webhook.created.isoformat(),
        "updated": webhook.updated.isoformat(),
    }


def _invalid(serializer: serializers.Serializer):
    errors = [
        {"field": name, "message": str(message)}
        for name, messages in serializer.errors.items()
        for message in (messages if isinstance(messages, list) else [messages])
    ]
    return error_response(422, "Invalid webhook.", errors)


def _kind_of(template: str) -> str:
    for kind, starter in STARTERS.items():
        if template.strip() == starter:
            return kind
    is_static = "{{" not in template and "{%" not in template
    return Webhook.Kind.STATIC if is_static else Webhook.Kind.DYNAMIC


class Webhooks(APIView):
    @extend_schema(
        request=WebhookIn,
        responses={201: WebhookOut, 422: OpenApiResponse(description="Invalid fields")},
        summary="Create a webhook (the server assigns its random slug)",
    )
    def post(self, request):
        serializer = WebhookIn(data=request.data)
        if not serializer.is_valid():
            return _invalid(serializer)
        data = dict(serializer.validated_data)
        data.setdefault("kind", _kind_of(data["template"]))
        webhook = webhook_changes.create(user=request.user, request=request, **data)
        return json_response(_out(request, webhook), status=201)


class WebhooksFilter(APIView):
    @extend_schema(request=FilterIn, responses={200: WebhookOut(many=True)}, summary="List")
    def post(self, request):
        serializer = FilterIn(data=request.data or {})
        if not serializer.is_valid():
            return _invalid(serializer)
        offset, limit = serializer.validated_data["offset"], serializer.validated_data["limit"]
        hooks = Webhook.objects.order_by("created", "id")[offset : offset + limit]
        return json_response([_out(request, w) for w in hooks])


class WebhookDetail(APIView):
    @extend_schema(responses={200: WebhookOut}, summary="Read one webhook")
    def get(self, request, pk):
        return json_response(_out(request, get_object_or_404(Webhook, pk=pk)))

    @extend_schema(
        request=WebhookIn, responses={204: None}, summary="Replace name/description/template"
    )
    def put(self, request, pk):
        webhook = get_object_or_404(Webhook, pk=pk)
        serializer = WebhookIn(data=request.data)
        if not serializer.is_valid():
            return _invalid(serializer)
        webhook_changes.update(webhook, request=request, **serializer.validated_data)
        return HttpResponse(status=204)

    @extend_schema(request=WebhookPatch, responses={204: None}, summary="Toggle or change fields")
    def patch(self, request, pk):
        webhook = get_object_or_404(Webhook, pk=pk)
        serializer = WebhookPatch(data=request.data)
        if not serializer.is_valid():
            return _invalid(serializer)
        webhook_changes.update(webhook, request=request, **serializer.validated_data)
        return HttpResponse(status=204)

    @extend_schema(responses={204: None}, summary="Delete a webhook")
    def delete(self, request, pk):
        webhook_changes.delete(get_object_or_404(Webhook, pk=pk), request=request)
        return HttpResponse(status=204)


class WebhookRotate(APIView):
    @extend_schema(request=None, responses={200: WebhookOut}, summary="Issue a new slug")
    def post(self, request, pk):
        webhook = webhook_changes.rotate(get_object_or_404(Webhook, pk=pk), request=request)
        return json_response(_out(request, webhook))
