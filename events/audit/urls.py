from django.urls import path

from events import views
from events.accounts.roles import Capability, capability_required

admin_only = capability_required(Capability.ADMIN)

app_name = "audit"

# The audit log is the feed, scoped to the audit trail: same filters, same live rows.
urlpatterns = [
    # Admins only: the trail names people and their addresses.
    path("", admin_only(views.feed), {"scope": "audit"}, name="log"),
    path("export/", admin_only(views.export_events), {"scope": "audit"}, name="export"),
    path("names/", admin_only(views.names), {"scope": "audit"}, name="names"),
]
