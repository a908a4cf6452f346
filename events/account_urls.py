from django.urls import path

from events import accounts, audit_views

app_name = "account"

urlpatterns = [
    path("tokens/", accounts.tokens, name="tokens"),
    path("tokens/<int:pk>/revoke/", accounts.revoke_token, name="revoke-token"),
]

audit_patterns = [path("", audit_views.audit_log, name="log")]
