from django.urls import path

from events import webhook_views

app_name = "webhooks"

urlpatterns = [
    path("", webhook_views.webhook_list, name="list"),
    path("new/", webhook_views.webhook_new, name="new"),
    path("test/", webhook_views.webhook_test, name="test"),
    path("<uuid:pk>/", webhook_views.webhook_detail, name="detail"),
    path("<uuid:pk>/toggle/", webhook_views.webhook_toggle, name="toggle"),
    path("<uuid:pk>/rotate/", webhook_views.webhook_rotate, name="rotate"),
    path("<uuid:pk>/delete/", webhook_views.webhook_delete, name="delete"),
    path(
        "<uuid:pk>/requests/<uuid:request_id>/replay/",
        webhook_views.webhook_replay,
        name="replay",
    ),
]
