from django.urls import path

from events import accounts, views

app_name = "account"

urlpatterns = [
    path("tokens/", accounts.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", accounts.revoke_token, name="revoke-token"),
]

# The audit log is the feed, scoped to the audit trail: same filters, same live rows.
audit_patterns = [path("", views.feed, {"scope": "audit"}, name="log")]
