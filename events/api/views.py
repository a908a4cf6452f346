"""The events REST API under /api/events, wire-compatible with Prefect 3 (shared/reference §3)."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydantic import BaseModel, ConfigDict, Field
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from events import queries, resource_counts
from events.accounts.roles import Capability, readable
from events.api.bodies import (
    error_response,
    json_array_response,
    json_response,
    parse_body,
    read_json,
)
from events.api.shapes import ErrorBody, EventBatch, EventCounts, EventPage
from events.filters import EventFilter
from events.ingest import ingest
from events.schema import Limits
from eventsite.links import public_url

PREFECT_VERSION = "3.9.1"
MAX_LIMIT = 200
MAX_TIME_INTERVAL = 1_000_000


class FilterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: EventFilter | None = None
    limit: int = Field(default=50, ge=0, le=MAX_LIMIT)


class CountByRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filter: EventFilter
    time_unit: queries.TimeUnit = "day"
    # Prefect's lower bound; the upper one keeps a bucket (interval × unit) a `timedelta`.
    time_interval: float = Field(default=1.0, ge=0.01, le=MAX_TIME_INTERVAL)


PROBLEMS = OpenApiResponse(
    ErrorBody, description="Invalid body: `{detail, errors: [{field, message}]}`"
)


def _page_response(request, page: queries.Page) -> HttpResponse:
    next_url = None
    if page.next_token:
        next_url = (
            public_url(reverse("api:events-filter-next"), request=request)
            + "?page-token="
            + page.next_token
        )
    return json_response(
        {
            "events": [e.to_wire() for e in page.events],
            "total": page.total,
            "next_page": next_url,
            "total_is_estimate": page.total_is_estimate,
        }
    )


class Health(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: bool}, summary="Liveness check (no token needed)")
    def get(self, request):
        return json_response(True)


class Version(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: str}, summary="The Prefect API version this server speaks")
    def get(self, request):
        return json_response(PREFECT_VERSION)


class CsrfToken(APIView):
    """The Prefect client asks for a CSRF token before its first write; we have no CSRF on the API.

    Token auth (no cookies) makes CSRF moot here. Prefect's own server answers exactly this when
    its CSRF protection is off, and its client then stops asking (reference §2.3).
    """

    @extend_schema(
        responses={422: OpenApiResponse(ErrorBody, description="CSRF protection is disabled.")},
        summary="CSRF token for Prefect clients (always disabled: the API uses tokens)",
    )
    def get(self, request):
        return error_response(422, "CSRF protection is disabled.")


class Events(APIView):
    capabilities = {"POST": Capability.WRITE_EVENTS}

    @extend_schema(
        request=EventBatch,
        responses={
            204: OpenApiResponse(
                description="All events stored (duplicates of stored ids are ignored)"
            ),
            413: OpenApiResponse(
                ErrorBody, description="An event is over the size limit; nothing stored"
            ),
            422: OpenApiResponse(
                ErrorBody, description="Invalid events, by index and field; nothing stored"
            ),
        },
        summary="Store a batch of events",
    )
    def post(self, request):
        data, error = read_json(request)
        if error:
            return error
        if not isinstance(data, list):
            return error_response(422, "The body must be a JSON array of events.")
        result = ingest(
            data, source="api", body_size=len(request.body), limits=Limits.from_settings()
        )
        if result.rejected:
            errors = [problem.as_dict(index) for index, problem in result.rejected]
            bad = len({index for index, _ in result.rejected})
            too_large = any(problem.too_large for _, problem in result.rejected)
            detail = f"{bad} of {len(data)} events are invalid; nothing was stored."
            return error_response(413 if too_large else 422, detail, errors)
        return HttpResponse(status=204)


class EventsFilter(APIView):
    capabilities = {"POST": Capability.READ}

    @extend_schema(
        request=FilterRequest,
        responses={200: EventPage, 422: PROBLEMS},
        summary="Query stored events (first page)",
    )
    def post(self, request):
        body, error = parse_body(request, FilterRequest, detail="Invalid filter.")
        if error:
            return error
        event_filter = readable(body.filter or EventFilter(), request.user, request.auth)
        page = queries.first_page(event_filter, limit=body.limit)
        return _page_response(request, page)


class EventsFilterNext(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("page-token", str, required=True)],
        responses={
            200: EventPage,
            403: OpenApiResponse(ErrorBody, description="Invalid page token"),
        },
        summary="The next page of a query, from its `next_page` URL",
    )
    def get(self, request):
        try:
            page = queries.next_page(request.GET.get("page-token", ""))
        except queries.InvalidPageToken:
            return error_response(403, "Invalid page token.")
        return _page_response(request, page)


class EventsCountBy(APIView):
    capabilities = {"POST": Capability.READ}

    @extend_schema(
        request=CountByRequest,
        parameters=[
            OpenApiParameter(
                "countable", str, OpenApiParameter.PATH, enum=["day", "time", "event", "resource"]
            )
        ],
        responses={200: EventCounts, 422: PROBLEMS},
        summary="Count events by day, time, event name or resource",
    )
    def post(self, request, countable: str):
        if countable not in ("day", "time", "event", "resource"):
            return error_response(
                422, f"Unknown countable {countable!r}; use one of day, time, event, resource."
            )
        body, error = parse_body(request, CountByRequest, detail="Invalid count request.")
        if error:
            return error
        body = body.model_copy(update={"filter": readable(body.filter, request.user, request.auth)})
        if countable == "event":
            return json_response(queries.count_by_event(body.filter))
        if countable == "resource":
            counts = resource_counts.resource_counts(body.filter)
            response = json_array_response(counts.chunk, counts.close)
            if counts.estimate:
                # Not every resource: those of a sample of the matches, each counted exactly.
                response["X-Eventsite-Estimate"] = "sampled-resources"
            return response
        unit, interval = (
            ("day", 1.0) if countable == "day" else (body.time_unit, body.time_interval)
        )
        try:
            return json_response(queries.count_by_time(body.filter, unit=unit, interval=interval))
        except queries.TooManyBuckets as exc:
            return error_response(422, str(exc))
