from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication

from events import api
from events.auth import TokenAuthentication

api_patterns = [
    path("health", api.Health.as_view(), name="health"),
    path("admin/version", api.Version.as_view(), name="version"),
    path("csrf-token", api.CsrfToken.as_view(), name="csrf-token"),
    path("events", api.Events.as_view(), name="events"),
    path("events/filter", api.EventsFilter.as_view(), name="events-filter"),
    path("events/filter/next", api.EventsFilterNext.as_view(), name="events-filter-next"),
    path("events/count-by/<str:countable>", api.EventsCountBy.as_view(), name="events-count-by"),
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

urlpatterns = [
    path("api/", include((api_patterns, "api"))),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
]
