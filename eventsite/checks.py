"""System checks of a deployment's settings: `manage.py serve`, `run_engine`, `migrate` and
`check` refuse to start when one fails."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def secret_key_is_shared(app_configs, **kwargs) -> list[Error]:
    """A deployment with its own database needs one secret key for all of its processes."""
    if settings.EVENTSITE_SECRET_KEY_REQUIRED and not settings.EVENTSITE_SECRET_KEY_SHARED:
        return [
            Error(
                "EVENTSITE_DATABASE_URL is set but EVENTSITE_SECRET_KEY is not.",
                hint=(
                    "Every process that shares the database (web processes, the engine) must sign "
                    "sessions, CSRF tokens and page tokens with the same key; a key generated per "
                    "data directory would differ between them and log people out at random. Set "
                    "EVENTSITE_SECRET_KEY to one long random value for all of them, e.g. the "
                    'output of: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
                ),
                id="eventsite.E001",
            )
        ]
    return []
