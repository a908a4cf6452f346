from django.urls import path

from events.resources import views

app_name = "resources"

# Resource ids are free text with dots (and sometimes slashes): the rest of the path is the id.
urlpatterns = [path("<path:resource_id>/", views.resource, name="detail")]
