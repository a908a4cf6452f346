from django.urls import path

from automations import views

app_name = "automations"

urlpatterns = [
    path("", views.automation_list, name="list"),
    path("new/", views.automation_new, name="new"),
    path("preview", views.automation_preview, name="preview"),
    path("<uuid:automation_id>/", views.automation_detail, name="detail"),
    path("<uuid:automation_id>/edit/", views.automation_edit, name="edit"),
    path("<uuid:automation_id>/delete", views.automation_delete, name="delete"),
    path("<uuid:automation_id>/toggle", views.automation_toggle, name="toggle"),
    path("<uuid:automation_id>/explain", views.automation_explain, name="explain"),
    path(
        "<uuid:automation_id>/actions/<int:index>/test",
        views.automation_test_action,
        name="test-action",
    ),
]
