from django.urls import path

from events.webhooks import api, views

app_name = "webhooks"

urlpatterns = [
    path("", views.webhook_list, name="list"),
    path("new/", views.webhook_new, name="new"),
    path("test/", views.webhook_test, name="test"),
    path("<uuid:pk>/", views.webhook_detail, name="detail"),
    path("<uuid:pk>/toggle/", views.webhook_toggle, name="toggle"),
    path("<uuid:pk>/rotate/", views.webhook_rotate, name="rotate"),
    path("<uuid:pk>/delete/", views.webhook_delete, name="delete"),
    path(
        "<uuid:pk>/requests/<uuid:request_id>/replay/",
        views.webhook_replay,
        name="replay",
    ),
]

# Under /api/ (namespace `api`).
api_urlpatterns = [
    path("webhooks/", api.Webhooks.as_view(), name="webhooks"),
    path("webhooks/filter", api.WebhooksFilter.as_view(), name="webhooks-filter"),
    path("webhooks/<uuid:pk>", api.WebhookDetail.as_view(), name="webhook"),
    path("webhooks/<uuid:pk>/rotate", api.WebhookRotate.as_view(), name="webhook-rotate"),
]
