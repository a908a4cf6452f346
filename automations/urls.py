from django.urls import path

from automations import api, resend_api, resend_views, views

app_name = "automations"

urlpatterns = [
    path("", views.automation_list, name="list"),
    path("new/", views.automation_new, name="new"),
    path("preview", views.automation_preview, name="preview"),
    path("sentence", views.automation_sentence, name="sentence"),
    path("action-slot", views.automation_action_slot, name="action-slot"),
    path("caused-by/<uuid:event_id>/", views.caused_by, name="caused-by"),
    path("firings/<uuid:firing_id>/", views.firing_detail, name="firing"),
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
    path("<uuid:automation_id>/resend", resend_views.resend, name="resend"),
    path("runs/<uuid:run_id>/resend", resend_views.resend_run, name="resend-run"),
]

# Under /api/ (namespace `api`).
api_urlpatterns = [
    path("automations/", api.AutomationsCreate.as_view(), name="automations"),
    path("automations/filter", api.AutomationsFilter.as_view(), name="automations-filter"),
    path("automations/count", api.AutomationsCount.as_view(), name="automations-count"),
    path(
        "automations/related-to/<path:resource_id>",
        api.AutomationsRelatedTo.as_view(),
        name="automations-related-to",
    ),
    path(
        "automations/owned-by/<path:resource_id>",
        api.AutomationsOwnedBy.as_view(),
        name="automations-owned-by",
    ),
    path("automations/preview", api.AutomationsPreview.as_view(), name="automations-preview"),
    path("automations/<uuid:automation_id>", api.AutomationDetail.as_view(), name="automation"),
    path(
        "automations/<uuid:automation_id>/explain",
        api.AutomationExplain.as_view(),
        name="automation-explain",
    ),
    path(
        "automations/<uuid:automation_id>/resend-failed",
        resend_api.ResendFailed.as_view(),
        name="automation-resend-failed",
    ),
    path(
        "automations/runs/<uuid:run_id>/resend",
        resend_api.ResendRun.as_view(),
        name="action-run-resend",
    ),
]
