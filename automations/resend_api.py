"""The API that resends failed action runs (the pages' `resend_views`, for scripts)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from drf_spectacular.utils import OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict, Field, field_validator
from rest_framework.views import APIView

from automations.actions import resend as resending
from automations.models import ActionRun, Automation
from events.api.bodies import error_response, json_response, parse_body
from events.api.shapes import ErrorBody

NOT_FOUND = OpenApiResponse(ErrorBody, description="No such automation or action run")


class ResendFailedBody(BaseModel):
    """Which failed runs to send again: those that gave up at or after `since`."""

    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="ISO 8601; without an offset, UTC.")

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class Resent(BaseModel):
    resent: int = Field(description="How many failed runs were queued again.")
    message: str


class ResendFailed(APIView):
    @extend_schema(
        request=ResendFailedBody,
        responses={200: Resent, 404: NOT_FOUND, 422: OpenApiResponse(ErrorBody)},
        summary="Resend every action run of an automation that failed since a time",
    )
    def post(self, request, automation_id: uuid.UUID):
        automation = Automation.objects.filter(pk=automation_id).first()
        if automation is None:
            return error_response(404, "Automation not found.")
        body, error = parse_body(request, ResendFailedBody, detail="Invalid resend request.")
        if error:
            return error
        count = resending.resend_failed(automation, since=body.since)
        noun = "run" if count == 1 else "runs"
        return json_response(
            {"resent": count, "message": f"Resent {count} failed {noun} since {body.since}."}
        )


class ResendRun(APIView):
    @extend_schema(
        request=None,
        responses={200: Resent, 404: NOT_FOUND, 409: OpenApiResponse(ErrorBody)},
        summary="Resend one failed action run",
    )
    def post(self, request, run_id: uuid.UUID):
        run = ActionRun.objects.select_related("automation").filter(pk=run_id).first()
        if run is None:
            return error_response(404, "Action run not found.")
        if not resending.resend(run):
            run.refresh_from_db()
            return error_response(409, f"The run is {run.status}, not failed: nothing resent.")
        return json_response({"resent": 1, "message": "Resent 1 failed run."})
