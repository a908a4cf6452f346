from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication

from automations import api as automations_api
from events import accounts, api, webhook_api, webhooks
from events.account_urls import audit_patterns
from events.auth import TokenAuthentication

api_patterns = [
    path("health", api.Health.as_view(), name="health"),
    path("admin/version", api.Version.as_view(), name="version"),
    path("csrf-token", api.CsrfToken.as_view(), name="csrf-token"),
    path("events", api.Events.as_view(), name="events"),
    path("events/filter", api.EventsFilter.as_view(), name="events-filter"),
    path("events/filter/next", api.EventsFilterNext.as_view(), name="events-filter-next"),
    path("events/count-by/<str:countable>", api.EventsCountBy.as_view(), name="events-count-by"),
    path("webhooks/", webhook_api.Webhooks.as_view(), name="webhooks"),
    path("webhooks/filter", webhook_api.WebhooksFilter.as_view(), name="webhooks-filter"),
    path("webhooks/<uuid:pk>", webhook_api.WebhookDetail.as_view(), name="webhook"),
    path("webhooks/<uuid:pk>/rotate", webhook_api.WebhookRotate.as_view(), name="webhook-rotate"),
    path("automations/", automations_api.AutomationsCreate.as_view(), name="automations"),
    path(
        "automations/filter", automations_api.AutomationsFilter.as_view(), name="automations-filter"
    ),
    path("automations/count", automations_api.AutomationsCount.as_view(), name="automations-count"),
    path(
        "automations/related-to/<path:resource_id>",
        automations_api.AutomationsRelatedTo.as_view(),
        name="automations-related-to",
    ),
    path(
        "automations/owned-by/<path:resource_id>",
        automations_api.AutomationsOwnedBy.as_view(),
        name="automations-owned-by",
    ),
    path(
        "automations/<uuid:automation_id>",
        automations_api.AutomationDetail.as_view(),
        name="automation",
    ),
    path(
        "automations/<uuid:automation_id>/explain",
        automations_api.AutomationExplain.as_view(),
        name="automation-explain",
    ),
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
    path("automations/", include("automations.urls")),
    path("admin/", admin.site.urls),
    # Django's login view with throttling; before auth.urls so that this one answers.
    path("accounts/login/", accounts.login, name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("events.account_urls")),
    path("webhooks/", include("events.webhook_urls")),
    path("audit/", include((audit_patterns, "audit"))),
    # Under `manage.py serve` eventsite/asgi.py answers /hooks/ before Django; same code path.
    re_path(r"^hooks/(?P<slug>[A-Za-z0-9_-]{1,200})/?$", webhooks.receive, name="webhook-receive"),
    path("events/", include("events.urls")),
    path("", RedirectView.as_view(url="/events/", permanent=False)),
]
