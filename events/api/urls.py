"""URLs of the events API (under /api/, namespace `api`) and the API schema and docs."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication

from events.api import views
from events.api.auth import TokenAuthentication

urlpatterns = [
    path("health", views.Health.as_view(), name="health"),
    path("admin/version", views.Version.as_view(), name="version"),
    path("csrf-token", views.CsrfToken.as_view(), name="csrf-token"),
    path("events", views.Events.as_view(), name="events"),
    path("events/filter", views.EventsFilter.as_view(), name="events-filter"),
    path("events/filter/next", views.EventsFilterNext.as_view(), name="events-filter-next"),
    path("events/count-by/<str:countable>", views.EventsCountBy.as_view(), name="events-count-by"),
]

docs_urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(
            authentication_classes=[TokenAuthentication, SessionAuthentication]
        ),
        name="schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="api:schema",
            authentication_classes=[TokenAuthentication, SessionAuthentication],
        ),
        name="docs",
    ),
]
