from django.urls import path

from events import views

app_name = "events"

urlpatterns = [
    path("", views.feed, name="feed"),
    path("<uuid:event_id>/", views.detail, name="detail"),
    path("suggest/", views.suggest, name="suggest"),
    path("names/", views.names, name="names"),
    path("export/", views.export_events, name="export"),
]
