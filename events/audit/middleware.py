"""Keep the request being served where the audit hooks can see it (`events.audit.scope`)."""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async

from events.audit import admin_log, scope


class CurrentRequestMiddleware:
    """Keep the request in a context variable for the audit hooks (signals get no request)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        current, token = scope.enter(request)
        try:
            response = self.get_response(request)
            _after_request(current)
            return response
        finally:
            scope.leave(token)

    async def __acall__(self, request):
        current, token = scope.enter(request)
        try:
            response = await self.get_response(request)
            if current.is_admin and request.method == "POST":
                await sync_to_async(_after_request)(current)
            return response
        finally:
            scope.leave(token)


def _after_request(current: scope.RequestScope) -> None:
    if current.is_admin and current.request.method == "POST":
        # Admin bulk actions write their log entries with `bulk_create`, which sends no signal.
        admin_log.record_bulk_log_entries(current)
