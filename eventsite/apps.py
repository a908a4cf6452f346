from django.apps import AppConfig

# Imported for what they register: the deployment checks and the OpenAPI naming of pydantic
# models (neither touches a model, so both may load with the app registry).
from eventsite import checks, openapi  # noqa: F401


class EventsiteConfig(AppConfig):
    name = "eventsite"
    verbose_name = "eventsite"
