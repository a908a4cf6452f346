from django.apps import AppConfig


class EventsiteConfig(AppConfig):
    name = "eventsite"
    verbose_name = "eventsite"

    def ready(self) -> None:
        # Registers the deployment checks and the OpenAPI naming of pydantic models.
        from eventsite import checks, openapi  # noqa: F401
