from django.urls import path

from events import views

app_name = "audit"

# The audit log is the feed, scoped to the audit trail: same filters, same live rows.
urlpatterns = [
    path("", views.feed, {"scope": "audit"}, name="log"),
    path("export/", views.export_events, {"scope": "audit"}, name="export"),
    path("names/", views.names, {"scope": "audit"}, name="names"),
]
