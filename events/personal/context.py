"""A template context processor: the signed-in person's display preferences, for base.html."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from events.personal.models import Preference


def preferences(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    # Lazy: responses that render no layout (htmx partials) never query it.
    return {"preferences": SimpleLazyObject(lambda: Preference.of(user))}
