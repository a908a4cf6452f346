from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: signal handlers touch models, which the app registry
        # loads only after every app config exists.
        from events.audit import signals  # noqa: F401  (connects the audit log's handlers)
