from django.contrib import admin
from django.urls import include, path, re_path
from django.views import defaults
from django.views.generic import RedirectView

from automations import urls as automations_urls
from events.accounts import views as account_views
from events.api import urls as api_urls
from events.api.bodies import error_response
from events.webhooks import receive
from events.webhooks import urls as webhooks_urls

api_patterns = [
    *api_urls.urlpatterns,
    *webhooks_urls.api_urlpatterns,
    *automations_urls.api_urlpatterns,
    *api_urls.docs_urlpatterns,
]

urlpatterns = [
    path("api/", include((api_patterns, "api"))),
    path("automations/", include("automations.urls")),
    path("admin/", admin.site.urls),
    # Django's login view with throttling; before auth.urls so that this one answers.
    path("accounts/login/", account_views.login, name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("account/", include("events.accounts.urls")),
    path("webhooks/", include("events.webhooks.urls")),
    path("audit/", include("events.audit.urls")),
    # Under `manage.py serve` events.webhooks.asgi answers /hooks/ before Django; same steps.
    re_path(r"^hooks/(?P<slug>[A-Za-z0-9_-]{1,200})/?$", receive.receive, name="webhook-receive"),
    path("events/", include("events.urls")),
    path("resources/", include("events.resources.urls")),
    path("", include("events.personal.urls")),
    path("", RedirectView.as_view(url="/events/", permanent=False)),
]


def handler404(request, exception):
    """Under /api/ a JSON error body (also for ids the URL patterns refuse), elsewhere the page."""
    if request.path_info.startswith("/api/"):
        return error_response(404, "Not found.")
    return defaults.page_not_found(request, exception)
