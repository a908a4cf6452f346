"""Pages refuse a NUL character in their URL (path or query string) with a 400.

No store can hold NUL (PostgreSQL refuses it even as a query parameter, where SQLite matches
nothing), so nothing such a URL asks for can exist; Django's forms refuse it in form fields
already. The API answers for itself: its bodies through `events.api.bodies.unstorable_response`,
its few string path parameters in their views.
"""

from __future__ import annotations

from django.core.exceptions import BadRequest
from django.views import defaults


class RefuseNulInUrlsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if not request.path_info.startswith("/api/") and (
            "\x00" in request.path_info or "%00" in query or "\x00" in query
        ):
            exception = BadRequest("A NUL character (%00) in the URL")
            return defaults.bad_request(request, exception)
        return self.get_response(request)
