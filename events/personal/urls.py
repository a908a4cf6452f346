from django.urls import path

from events.personal import views

app_name = "personal"

urlpatterns = [
    path("views/", views.saved_views, name="views"),
    path("views/<uuid:view_id>/", views.open_view, name="open-view"),
    path("views/<uuid:view_id>/delete/", views.delete_view, name="delete-view"),
    path("account/preferences/", views.preferences, name="preferences"),
]
