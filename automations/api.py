"""The automations REST API under /api/automations, compatible with Prefect's (reference §3.5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rest_framework.views import APIView

from automations import changes, explain
from automations.models import Automation
from automations.shapes import Automation as AutomationShape
from automations.shapes import AutomationIn, AutomationList, Explanation, Preview, PreviewBody
from automations.triggers import TriggerInvalid
from automations.validation import AutomationInvalid, previous_actions, validate_definition
from events import queries
from events.accounts.roles import Capability
from events.api.bodies import (
    error_response,
    json_response,
    parse_body,
    read_json,
    unstorable_response,
)
from events.api.shapes import ErrorBody
from events.schema import MAX_CLIENT_INT, unstorable

MAX_LIMIT = 200
INVALID = OpenApiResponse(ErrorBody, description="Invalid automation, by field")
NOT_FOUND = OpenApiResponse(ErrorBody, description="No such automation")


def _invalid(exc: AutomationInvalid, data) -> HttpResponse:
    return error_response(422, "Invalid automation.", exc.errors, request_body=data)


def _not_found() -> HttpResponse:
    return error_response(404, "Automation not found.")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _IdFilter(_Strict):
    any_: list[uuid.UUID] | None = None


class _NameFilter(_Strict):
    any_: list[str] | None = None


class _CreatedFilter(_Strict):
    before_: datetime | None = None


class _TagsFilter(_Strict):
    operator: Literal["and_", "or_"] = "and_"
    all_: list[str] | None = None
    any_: list[str] | None = None
    is_null_: bool | None = None


class AutomationFilter(_Strict):
    operator: Literal["and_", "or_"] = "and_"
    id: _IdFilter | None = None
    name: _NameFilter | None = None
    created: _CreatedFilter | None = None
    tags: _TagsFilter | None = None

    def matches(self, automation: Automation) -> bool:
        checks = []
        if self.id and self.id.any_ is not None:
            checks.append(automation.id in self.id.any_)
        if self.name and self.name.any_ is not None:
            checks.append(automation.name in self.name.any_)
        if self.created and self.created.before_ is not None:
            checks.append(automation.created <= self.created.before_)
        if self.tags:
            tags = set(automation.tags)
            parts = []
            if self.tags.all_ is not None:
                parts.append(set(self.tags.all_) <= tags)
            if self.tags.any_ is not None:
                parts.append(bool(set(self.tags.any_) & tags))
            if self.tags.is_null_ is not None:
                parts.append(not tags if self.tags.is_null_ else bool(tags))
            if parts:
                checks.append(all(parts) if self.tags.operator == "and_" else any(parts))
        if not checks:
            return True
        return all(checks) if self.operator == "and_" else any(checks)


class FilterRequest(_Strict):
    sort: Literal["CREATED_DESC", "UPDATED_DESC", "NAME_ASC", "NAME_DESC"] | None = "NAME_ASC"
    limit: int | None = Field(default=None, ge=0, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_CLIENT_INT)
    automations: AutomationFilter | None = None


class CountRequest(_Strict):
    automations: AutomationFilter | None = None


class PreviewRequest(_Strict):
    trigger: dict[str, Any]
    since: datetime
    until: datetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PreviewRequest:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                setattr(self, name, value.replace(tzinfo=UTC))
        if self.until is not None and self.until < self.since:
            raise ValueError("`until` must not be before `since`")
        return self


class PatchRequest(_Strict):
    enabled: bool = True


SORTS = {
    "CREATED_DESC": lambda a: (-a.created.timestamp(), a.name),
    "UPDATED_DESC": lambda a: (-a.updated.timestamp(), a.name),
    "NAME_ASC": lambda a: (a.name, a.created),
}


def _filtered(flt: AutomationFilter | None) -> list[Automation]:
    automations = list(Automation.objects.all())
    return [a for a in automations if flt is None or flt.matches(a)]


class AutomationsCreate(APIView):
    @extend_schema(
        request=AutomationIn,
        responses={
            201: OpenApiResponse(AutomationShape, description="The automation, new trigger ids"),
            422: INVALID,
        },
        summary="Create an automation",
    )
    def post(self, request):
        data, error = read_json(request)
        if error or (error := unstorable_response(data, detail="Invalid automation.")):
            return error
        automation_id = uuid.uuid4()
        try:
            definition = validate_definition(data, automation_id=automation_id)
        except AutomationInvalid as exc:
            return _invalid(exc, data)
        automation = changes.create(
            id=automation_id,
            owner=request.user,
            owner_resource=definition.owner_resource,
            **definition.fields(),
        )
        return json_response(automation.to_api(), status=201)


class AutomationDetail(APIView):
    @extend_schema(responses={200: AutomationShape, 404: NOT_FOUND}, summary="Read an automation")
    def get(self, request, automation_id: uuid.UUID):
        automation = Automation.objects.filter(pk=automation_id).first()
        if automation is None:
            return _not_found()
        return json_response(automation.to_api())

    @extend_schema(
        request=AutomationIn,
        responses={204: None, 404: NOT_FOUND, 422: INVALID},
        summary="Replace an automation",
    )
    def put(self, request, automation_id: uuid.UUID):
        data, error = read_json(request)
        if error or (error := unstorable_response(data, detail="Invalid automation.")):
            return error
        automation = Automation.objects.filter(pk=automation_id).first()
        if automation is None:
            return _not_found()
        try:
            definition = validate_definition(
                data,
                automation_id=automation.id,
                allow_owner=False,
                previous=previous_actions(automation),
            )
        except AutomationInvalid as exc:
            return _invalid(exc, data)
        changes.update(automation, definition.fields())
        return HttpResponse(status=204)

    @extend_schema(
        request=PatchRequest,
        responses={204: None, 404: NOT_FOUND, 422: INVALID},
        summary="Enable or disable",
    )
    def patch(self, request, automation_id: uuid.UUID):
        body, error = parse_body(request, PatchRequest)
        if error:
            return error
        automation = Automation.objects.filter(pk=automation_id).first()
        if automation is None:
            return _not_found()
        changes.set_enabled(automation, body.enabled)
        return HttpResponse(status=204)

    @extend_schema(responses={204: None, 404: NOT_FOUND}, summary="Delete an automation")
    def delete(self, request, automation_id: uuid.UUID):
        automation = Automation.objects.filter(pk=automation_id).first()
        if automation is None:
            return _not_found()
        changes.delete(automation)
        return HttpResponse(status=204)


class AutomationsFilter(APIView):
    capabilities = {"POST": Capability.READ}

    @extend_schema(
        request=FilterRequest, responses={200: AutomationList, 422: INVALID}, summary="List"
    )
    def post(self, request):
        body, error = parse_body(request, FilterRequest, detail="Invalid filter.")
        if error:
            return error
        found = _filtered(body.automations)
        sort = body.sort or "NAME_ASC"
        if sort == "NAME_DESC":
            found.sort(key=lambda a: (a.name, a.created), reverse=True)
        else:
            found.sort(key=SORTS[sort])
        limit = MAX_LIMIT if body.limit is None else body.limit
        page = found[body.offset : body.offset + limit]
        return json_response([a.to_api() for a in page])


class AutomationsCount(APIView):
    capabilities = {"POST": Capability.READ}

    @extend_schema(
        request=CountRequest, responses={200: int, 422: INVALID}, summary="Count automations"
    )
    def post(self, request):
        body, error = parse_body(request, CountRequest, detail="Invalid filter.")
        if error:
            return error
        return json_response(len(_filtered(body.automations)))


def _related_to(resource_id: str) -> list[Automation]:
    """The automations related to a resource, as Prefect relates them.

    Prefect relates an automation to its `owner_resource` and to the deployments its
    run-deployment actions select; eventsite has no run-deployment, so only owners remain. An
    automation that pauses or resumes another is not related to it (Prefect returns none).
    """
    if unstorable(resource_id):  # no stored owner holds NUL, and PostgreSQL refuses it in a query
        return []
    return list(Automation.objects.filter(owner_resource=resource_id).order_by("created"))


class AutomationsRelatedTo(APIView):
    @extend_schema(responses={200: AutomationList}, summary="Automations related to a resource")
    def get(self, request, resource_id: str):
        return json_response([a.to_api() for a in _related_to(resource_id)])


class AutomationsOwnedBy(APIView):
    @extend_schema(responses={202: None}, summary="Delete the automations a resource owns")
    def delete(self, request, resource_id: str):
        now = timezone.now()
        for automation in _related_to(resource_id):
            if automation.created <= now:
                changes.delete(automation)
        return HttpResponse(status=202)


class AutomationsPreview(APIView):
    capabilities = {"POST": Capability.READ}

    @extend_schema(
        request=PreviewBody,
        responses={200: Preview, 422: INVALID},
        summary="The firings a trigger would have made over the stored events",
    )
    def post(self, request):
        body, error = parse_body(request, PreviewRequest, detail="Invalid preview request.")
        if error:
            return error
        try:
            return json_response(explain.preview(body.trigger, since=body.since, until=body.until))
        except TriggerInvalid as exc:
            return error_response(422, "Invalid trigger.", exc.errors, request_body=body.trigger)


class AutomationExplain(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("event", uuid.UUID, required=True)],
        responses={200: Explanation, 404: NOT_FOUND, 422: INVALID},
        summary="Why an automation did or did not fire for a stored event",
    )
    def get(self, request, automation_id: uuid.UUID):
        automation = Automation.objects.filter(pk=automation_id).first()
        if automation is None:
            return _not_found()
        try:
            event_id = uuid.UUID(request.GET.get("event", ""))
        except ValueError:
            return error_response(422, "Give the event's id as ?event=<uuid>.")
        row = queries.event(event_id)
        if row is None:
            return error_response(404, "Event not found.")
        return json_response(explain.explain_stored(automation, row))
